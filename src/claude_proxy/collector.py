"""When the cyclic garbage collector runs in a gateway process, and what it costs.

CPython's generational collector suits a gateway badly. Each open stream keeps
~160 tracked objects alive, and every young collection reads the header of every
object its young objects point to, scattered over the heap: at 5,000 open streams
young collections paused the process for 2-100 ms many times a second, and the
full collections its 25 %-growth rule triggers paused it for 0.3-1 s (measured with
``benchmarks/streaming.py``: inter-event gap p99 +993 ms; with collections off,
+4.9 ms). Almost everything a request allocates is freed by reference counting
(1,000 plain requests left no cycles); what is left over comes from errors and
disconnects, about a dozen objects each.

``managed`` (the default) therefore turns automatic collection off and runs one
full collection when the tracked objects created since the last one (net of those
freed) reach ``gc_growth`` (2) times its survivors, and at least ``gc_min_objects``:
garbage stays bounded by a multiple of what is alive, a process that grows pauses
a few times on the way (each pause longer, so rarer), and one whose load is steady
rarely collects at all. ``python`` keeps Python's own collector (its thresholds
in ``gc_thresholds``). Either way every pause is measured (``api_gc_pause_seconds``).
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Callable
from typing import Any

from claude_proxy.config.settings import RuntimeSettings

__all__ = ["CollectionPolicy"]

Observe = Callable[[int, float], None]


class CollectionPolicy:
    """Applies ``RuntimeSettings`` to this process's collector (a process-wide choice)."""

    def __init__(self, settings: RuntimeSettings, observe: Observe | None = None) -> None:
        self.settings = settings
        self.managed = settings.gc == "managed"
        # Tracked objects alive after the last full collection, as far as counts tell.
        self.survivors = 0
        self.collections = 0
        self._observe = observe
        self._started = 0.0

    def install(self) -> None:
        """Call once start-up is done: what is alive then is frozen out of collections."""
        gc.collect()
        if self.settings.gc_freeze:
            gc.freeze()
        if self.managed:
            gc.disable()
        else:
            gc.set_threshold(*self.settings.gc_thresholds)
        if self._observe is not None:
            gc.callbacks.append(self._on_collection)

    def uninstall(self) -> None:
        if self._on_collection in gc.callbacks:
            gc.callbacks.remove(self._on_collection)
        gc.unfreeze()
        gc.enable()

    def due(self) -> bool:
        created = gc.get_count()[0]
        settings = self.settings
        return created >= max(settings.gc_min_objects, settings.gc_growth * self.survivors)

    def collect_if_due(self) -> bool:
        """One full collection if enough objects have been created since the last one."""
        if not self.managed or not self.due():
            return False
        created = gc.get_count()[0]
        unreachable = gc.collect()
        self.collections += 1
        self.survivors = max(self.survivors + created - unreachable, 0)
        return True

    async def run(self, interval: float = 0.5) -> None:
        """Check every ``interval`` seconds (cheap: one counter read) until cancelled."""
        while True:
            await asyncio.sleep(interval)
            self.collect_if_due()

    def _on_collection(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = time.perf_counter()
        elif self._observe is not None:
            self._observe(int(info["generation"]), time.perf_counter() - self._started)
