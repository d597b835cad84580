"""Stores that failed, logged as a count at most once per interval.

A Redis that refuses writes (``OOM`` under ``noeviction``, ``READONLY`` after a failover)
still answers lookups, so it is no outage, and it fails every store for as long as it
lasts: one line per store would flood the log, one line in all would hide that it goes
on. So: a warning at the first failure, then at most one per ``interval`` saying how
many failed since the last line.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

__all__ = ["StoreFailures"]

INTERVAL = 60.0


class StoreFailures:
    def __init__(
        self,
        log: logging.Logger,
        *,
        interval: float = INTERVAL,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._log = log
        self._interval = interval
        self._clock = clock
        self._unreported = 0
        self._logged_at: float | None = None

    def failed(self, exc: BaseException) -> None:
        self._unreported += 1
        now = self._clock()
        if self._logged_at is not None and now - self._logged_at < self._interval:
            return
        since = ""
        if self._logged_at is not None:
            since = f" in the {now - self._logged_at:.0f} s since the last report"
        # The cause names the redis-py error (never the URL, which may hold a password).
        cause = exc.__cause__ or exc
        self._log.warning(
            "response cache: %d store(s) failed%s; those answers were not kept (last: %s: %s)",
            self._unreported,
            since,
            type(cause).__name__,
            cause,
        )
        self._unreported = 0
        self._logged_at = now
