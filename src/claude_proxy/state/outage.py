"""Outages of a shared store: one log line when it starts failing, one when it is back,
and how long the loops that keep retrying in between should wait."""

from __future__ import annotations

import logging
import random
import time
from collections.abc import Callable

__all__ = ["Outage"]


# A failure this soon after the store answered again is a stale connection of the same
# outage (redis-py finds some only when it uses them), not a new one worth two lines.
FLAP_SECONDS = 1.0


class Outage:
    """Whether a store is failing now, logged once per run of failures, not per attempt.

    A store that is down fails every request and every background poll: a line for each
    would bury the one line that says when it started. ``ok()`` is cheap enough to call
    after every successful command.
    """

    __slots__ = ("_back_at", "_clock", "_failures", "_log", "_quiet", "_since", "what")

    def __init__(
        self, log: logging.Logger, what: str, *, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self._log = log
        self.what = what
        self._clock = clock
        self._since: float | None = None
        self._failures = 0
        self._back_at = -FLAP_SECONDS
        self._quiet = False  # this outage began as a flap: not logged (yet)

    @property
    def down(self) -> bool:
        return self._since is not None

    def failed(self, exc: BaseException) -> None:
        self._failures += 1
        now = self._clock()
        if self._since is None:
            self._since = now
            self._quiet = now - self._back_at < FLAP_SECONDS
        elif not self._quiet or now - self._since < FLAP_SECONDS:
            return
        else:
            self._quiet = False  # no flap: it has lasted, so it is an outage of its own
        if not self._quiet:
            # The cause names the redis-py error (never the URL, which may hold a password).
            cause = exc.__cause__ or exc
            self._log.warning(
                "%s is unavailable (%s); retrying quietly until it answers", self.what, cause
            )

    def ok(self) -> None:
        if self._since is None:
            return
        now = self._clock()
        if not self._quiet:
            self._log.warning(
                "%s answers again after %.1f s (%d failed attempts)",
                self.what,
                now - self._since,
                self._failures,
            )
        self._since = None
        self._failures = 0
        self._quiet = False
        self._back_at = now

    def backoff(self, first: float, cap: float) -> float:
        """Seconds a loop should wait before its next attempt: a quarter of the outage so
        far, between ``first`` and ``cap``, drawn from the upper half of that.

        Tied to the outage rather than to each loop's own attempts, it starts short again
        for every new outage whichever loop noticed it first; the jitter keeps a fleet of
        replicas, all failing at once, from retrying in lockstep when the store is back.
        """
        elapsed = 0.0 if self._since is None else self._clock() - self._since
        delay = min(cap, max(first, elapsed / 4))
        return random.uniform(delay / 2, delay)
