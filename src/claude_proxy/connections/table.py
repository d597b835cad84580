"""Who holds the client connections: counts per address, limits, and whom to close first.

Pure bookkeeping, no sockets: ``ConnectionTable`` is told when a connection opens,
starts a request, finishes one and closes, and answers whether a new connection may
open. At a limit, the connection that has waited longest for a request head (a new
one that sent nothing useful yet, or an idle keep-alive one) makes room; a client
sending requests is never cut off for a newcomer. When every connection in the way
has a request in progress, the newcomer is refused.
"""

from __future__ import annotations

import ipaddress
import resource
from dataclasses import dataclass, field, fields
from typing import Generic, Literal, NamedTuple, TypeVar

from claude_proxy.config.settings import ClientSettings

__all__ = [
    "Admission",
    "ConnectionStats",
    "ConnectionTable",
    "Limits",
    "address_key",
    "auto_max_connections",
    "descriptor_room",
    "resolve_limits",
]

C = TypeVar("C")
Refusal = Literal["address", "total"]

# Descriptors a process needs besides client sockets: upstream connections (the window
# plus the idle pool), Redis, the listening socket, the event loop, metrics and log files.
HEADROOM = 256
# Past this, memory matters more than descriptors: an idle connection costs ~6 KB of RSS
# (benchmarks/exhaustion.py), and a connection with a request in progress far more.
AUTO_CAP = 50_000


@dataclass(frozen=True, slots=True)
class Limits:
    max_connections: int
    max_per_address: int  # 0: none


def descriptor_room(nofile: int) -> int:
    """Client connections ``nofile`` descriptors leave room for, besides everything else."""
    if nofile < 0 or nofile == resource.RLIM_INFINITY:
        return 1 << 30
    return max(1, nofile - max(min(HEADROOM, nofile // 2), nofile // 10))


def auto_max_connections(nofile: int) -> int:
    """``max_connections: auto`` in a process with ``nofile`` descriptors."""
    return min(AUTO_CAP, descriptor_room(nofile))


def resolve_limits(settings: ClientSettings, nofile: int | None = None) -> Limits:
    """The limits ``auto`` stands for in this process (``nofile``: its RLIMIT_NOFILE)."""
    total = settings.max_connections
    if isinstance(total, str):  # auto
        if nofile is None:
            nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
        total = auto_max_connections(nofile)
    per_address = settings.max_connections_per_address
    if isinstance(per_address, str):  # auto
        return Limits(total, max(1, total // 2))
    return Limits(total, per_address)


def address_key(peername: object) -> str | None:
    """What a client is counted by: its IPv4 address, or its IPv6 /64 (one subscriber's
    usual allocation, so rotating addresses within it gains nothing). None: no address
    (a Unix socket), never limited per address."""
    if not isinstance(peername, tuple) or not peername or not isinstance(peername[0], str):
        return None
    host = peername[0]
    if ":" not in host:
        return host
    try:
        ip = ipaddress.IPv6Address(host)
    except ValueError:
        return None
    if ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ipaddress.IPv6Network((int(ip) >> 64 << 64, 64)))


@dataclass(slots=True)
class ConnectionStats:
    """Counters since the server started, for the logs and the tests."""

    accepted: int = 0
    refused_address: int = 0
    refused_total: int = 0
    evicted: int = 0
    header_timeouts: int = 0
    body_timeouts: int = 0
    bad_requests: int = 0

    def summary(self) -> str:
        return ", ".join(
            f"{f.name.replace('_', ' ')} {getattr(self, f.name)}" for f in fields(self)
        )


class Admission(NamedTuple, Generic[C]):
    """A decision on a new connection: refused (and why), or admitted once ``victims``,
    already removed from the table, are closed."""

    refused: Refusal | None
    victims: list[C]


@dataclass(slots=True)
class ConnectionTable(Generic[C]):
    """Open connections per address, and those waiting for a request head, longest first."""

    limits: Limits
    stats: ConnectionStats = field(default_factory=ConnectionStats)
    total: int = 0
    _address: dict[C, str | None] = field(default_factory=dict)
    _per_address: dict[str, int] = field(default_factory=dict)
    # Insertion order is the order connections began to wait (dicts keep it): the
    # first key is the one that has waited longest.
    _waiting: dict[C, None] = field(default_factory=dict)
    _waiting_at: dict[str, dict[C, None]] = field(default_factory=dict)

    def count(self, address: str | None) -> int:
        return self.total if address is None else self._per_address.get(address, 0)

    def admit(self, conn: C, address: str | None) -> Admission[C]:
        victims: list[C] = []
        per_address = self.limits.max_per_address
        if per_address and address is not None and self.count(address) >= per_address:
            victim = self._evict_longest_waiting(self._waiting_at.get(address))
            if victim is None:
                self.stats.refused_address += 1
                return Admission("address", victims)
            victims.append(victim)
        if self.total >= self.limits.max_connections:
            victim = self._evict_longest_waiting(self._waiting)
            if victim is None:
                self.stats.refused_total += 1
                return Admission("total", victims)
            victims.append(victim)
        self.stats.accepted += 1
        self.stats.evicted += len(victims)
        self._address[conn] = address
        self.total += 1
        if address is not None:
            self._per_address[address] = self._per_address.get(address, 0) + 1
        self.waiting(conn)
        return Admission(None, victims)

    def busy(self, conn: C) -> None:
        """``conn`` has a whole request head: a request is in progress."""
        if conn in self._waiting:
            del self._waiting[conn]
            address = self._address[conn]
            if address is not None:
                self._unwait_at(address, conn)

    def waiting(self, conn: C) -> None:
        """``conn`` finished its request (or just opened): it waits for the next head."""
        if conn not in self._address or conn in self._waiting:
            return
        self._waiting[conn] = None
        address = self._address[conn]
        if address is not None:
            self._waiting_at.setdefault(address, {})[conn] = None

    def release(self, conn: C) -> None:
        """``conn`` is gone (closed, or chosen as a victim); calling it again is harmless."""
        if conn not in self._address:
            return
        self.busy(conn)
        address = self._address.pop(conn)
        self.total -= 1
        if address is not None:
            left = self._per_address[address] - 1
            if left:
                self._per_address[address] = left
            else:
                del self._per_address[address]

    def _evict_longest_waiting(self, waiting: dict[C, None] | None) -> C | None:
        if not waiting:
            return None
        victim = next(iter(waiting))
        # A victim leaves at once so that the newcomer's place is already free.
        self.release(victim)
        return victim

    def _unwait_at(self, address: str, conn: C) -> None:
        waiting = self._waiting_at[address]
        del waiting[conn]
        if not waiting:
            del self._waiting_at[address]
