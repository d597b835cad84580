"""Stop background tasks within a deadline, even those that lost their cancellation.

On Python 3.11, ``asyncio.wait_for`` drops a cancellation that arrives as its inner
future completes (CPython gh-86296, fixed in 3.12), and redis-py wraps every command
send in it: a task cancelled during a Redis command may get the reply instead of
``CancelledError``, and go on with ``cancelling()`` still set. Loops check
:func:`cancel_requested` to stop anyway; :func:`stop_tasks` cancels again whatever is
still running, and never waits past its deadline.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable
from typing import Any

__all__ = ["cancel_requested", "stop_tasks"]

_log = logging.getLogger("claude_proxy.state")

# A task that swallowed a cancel is parked somewhere else by now: cancel it again this
# often, so one lost cancel costs a fraction of the deadline, not all of it.
RECANCEL_EVERY = 0.05


def cancel_requested() -> bool:
    """Whether the current task was asked to stop, even if the ``CancelledError`` was lost."""
    task = asyncio.current_task()
    return task is not None and task.cancelling() > 0


async def stop_tasks(tasks: Iterable[asyncio.Task[Any]], *, deadline: float) -> None:
    """Cancel ``tasks`` and wait until they end, at most ``deadline`` seconds.

    A task still running after a cancel is cancelled again, every ``RECANCEL_EVERY``
    seconds. Those still running at the deadline are left behind with a warning naming
    them. Errors the tasks ended with are logged, not raised.
    """
    tasks = list(tasks)
    loop = asyncio.get_running_loop()
    give_up = loop.time() + deadline
    pending = set(tasks)
    while True:
        pending = {task for task in pending if not task.done()}
        left = give_up - loop.time()
        if not pending or left <= 0:
            break
        for task in pending:
            task.cancel()
        await asyncio.wait(pending, timeout=min(left, RECANCEL_EVERY))
    for task in tasks:
        if task.done() and not task.cancelled() and task.exception() is not None:
            _log.warning("%s had failed: %r", task.get_name(), task.exception())
    if pending:
        names = ", ".join(sorted(task.get_name() for task in pending))
        _log.warning("tasks still running %g s after being cancelled: %s", deadline, names)
