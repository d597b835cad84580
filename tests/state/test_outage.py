"""An outage is two log lines, however many attempts fail in between."""

from __future__ import annotations

import logging

import pytest

from claude_proxy.state.outage import Outage
from tests.helpers import Clock


@pytest.fixture
def clock() -> Clock:
    return Clock()


def lines(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [record.getMessage() for record in caplog.records]


def test_one_line_when_it_starts_and_one_when_it_ends(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    outage = Outage(logging.getLogger("test.outage"), "the store", clock=clock)
    outage.ok()  # nothing to say while it answers
    for _ in range(500):
        outage.failed(ConnectionError("refused"))
        clock.now += 0.01
    assert outage.down
    outage.ok()
    outage.ok()
    assert not outage.down
    assert len(lines(caplog)) == 2
    assert "the store is unavailable (refused)" in lines(caplog)[0]
    assert "answers again after 5.0 s (500 failed attempts)" in lines(caplog)[1]


def test_a_stale_connection_just_after_it_answered_is_not_a_new_outage(
    clock: Clock, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.WARNING)
    outage = Outage(logging.getLogger("test.outage"), "the store", clock=clock)
    outage.failed(ConnectionError("refused"))
    clock.now += 2
    outage.ok()
    clock.now += 0.1
    outage.failed(ConnectionError("closed by server"))  # one pooled connection was stale
    outage.ok()
    assert len(lines(caplog)) == 2
    clock.now += 0.1
    outage.failed(ConnectionError("refused"))  # down again, and for long this time
    clock.now += 1.5
    outage.failed(ConnectionError("refused"))
    outage.ok()
    assert len(lines(caplog)) == 4


def test_backoff_grows_with_the_outage_within_bounds(clock: Clock) -> None:
    outage = Outage(logging.getLogger("test.outage"), "the store", clock=clock)
    assert 0.01 <= outage.backoff(0.02, 2.0) <= 0.02  # no outage: the shortest
    outage.failed(ConnectionError("refused"))
    clock.now += 4
    assert 0.5 <= outage.backoff(0.02, 2.0) <= 1.0
    clock.now += 60
    assert 1.0 <= outage.backoff(0.02, 2.0) <= 2.0
