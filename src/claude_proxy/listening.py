"""A port that cannot be listened on is a one-line error, not a traceback."""

from __future__ import annotations

import contextlib
import errno
from collections.abc import Iterator

import click

__all__ = ["listen_errors"]

_CANNOT_LISTEN = frozenset({errno.EADDRINUSE, errno.EACCES, errno.EADDRNOTAVAIL})


@contextlib.contextmanager
def listen_errors(host: str, port: int) -> Iterator[None]:
    """Turn a failure to bind ``host:port`` into a ``click`` error naming the way out."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _CANNOT_LISTEN:
            raise
        reason = {
            errno.EADDRINUSE: "the port is in use (another server?)",
            errno.EACCES: "permission denied (ports below 1024 need privileges)",
            errno.EADDRNOTAVAIL: "this machine has no such address",
        }[exc.errno]
        raise click.ClickException(
            f"cannot listen on {host}:{port}: {reason}; choose another with --port or --host"
        ) from None
