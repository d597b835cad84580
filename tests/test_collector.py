"""The collection policy: no automatic collections, one full collection when garbage is due."""

from __future__ import annotations

import gc
from collections.abc import Iterator

import pytest

from claude_proxy.collector import CollectionPolicy
from claude_proxy.config.settings import RuntimeSettings


class Node:
    def __init__(self) -> None:
        self.other: Node | None = None


def cycles(n: int) -> None:
    """``n`` pairs of objects that only reference counting cannot free."""
    for _ in range(n):
        a, b = Node(), Node()
        a.other, b.other = b, a


@pytest.fixture
def restore_gc() -> Iterator[None]:
    thresholds, enabled = gc.get_threshold(), gc.isenabled()
    yield
    gc.set_threshold(*thresholds)
    gc.unfreeze()
    (gc.enable if enabled else gc.disable)()


def test_managed_collects_once_enough_garbage_is_made(restore_gc: None) -> None:
    pauses: list[tuple[int, float]] = []
    policy = CollectionPolicy(
        RuntimeSettings(gc_min_objects=20_000, gc_growth=4.0),
        observe=lambda generation, seconds: pauses.append((generation, seconds)),
    )
    policy.install()
    try:
        assert not gc.isenabled()
        cycles(2_000)  # 4,000 tracked objects (their dicts are not tracked)
        assert not policy.collect_if_due()
        assert policy.collections == 0 and pauses == []
        cycles(10_000)
        assert policy.collect_if_due()
        assert policy.collections == 1
        assert [generation for generation, _ in pauses] == [2]
        assert policy.survivors < 5_000  # the cycles were garbage, not survivors
        assert gc.get_count()[0] < 1_000
        assert not policy.collect_if_due()
    finally:
        policy.uninstall()
    assert gc.isenabled()


def test_survivors_raise_the_bar_for_the_next_collection(restore_gc: None) -> None:
    policy = CollectionPolicy(RuntimeSettings(gc_min_objects=1_000, gc_growth=2.0))
    policy.install()
    try:
        kept = [[i] for i in range(5_000)]  # alive: the next collection keeps them
        assert policy.collect_if_due()
        assert policy.survivors >= 5_000
        cycles(2_000)  # 4,000 new: below 2 x 5,000 survivors
        assert not policy.collect_if_due()
        cycles(4_000)
        assert policy.collect_if_due()
        assert len(kept) == 5_000
    finally:
        policy.uninstall()


def test_python_mode_keeps_the_generational_collector(restore_gc: None) -> None:
    pauses: list[tuple[int, float]] = []
    policy = CollectionPolicy(
        RuntimeSettings(gc="python", gc_thresholds=(500, 5, 5)),
        observe=lambda generation, seconds: pauses.append((generation, seconds)),
    )
    policy.install()
    try:
        assert gc.isenabled() and gc.get_threshold() == (500, 5, 5)
        cycles(1_000)
        assert pauses and all(seconds >= 0 for _, seconds in pauses)
        assert not policy.collect_if_due()  # Python decides, not the policy
    finally:
        policy.uninstall()
