"""The connection table's bookkeeping, the limits ``auto`` stands for, and the quiet log."""

from __future__ import annotations

import logging
import resource

import pytest

from claude_proxy.config.settings import ClientSettings
from claude_proxy.connections import (
    ClientGuard,
    ConnectionTable,
    Limits,
    RateLimitedLog,
    address_key,
    auto_max_connections,
    resolve_limits,
)


def table(total: int, per_address: int = 0) -> ConnectionTable[str]:
    return ConnectionTable(Limits(total, per_address))


def test_at_an_address_limit_the_longest_waiting_of_that_address_makes_room() -> None:
    t = table(10, per_address=2)
    assert t.admit("a1", "A") == (None, [])
    assert t.admit("a2", "A") == (None, [])
    assert t.admit("b1", "B") == (None, [])
    assert t.admit("a3", "A") == (None, ["a1"])
    assert (t.count("A"), t.count("B"), t.total) == (2, 1, 3)


def test_a_connection_with_a_request_in_progress_is_never_a_victim() -> None:
    t = table(10, per_address=2)
    for conn in ("a1", "a2"):
        t.admit(conn, "A")
        t.busy(conn)
    assert t.admit("a3", "A") == ("address", [])
    assert t.stats.refused_address == 1
    t.waiting("a2")  # a2's request is over
    assert t.admit("a3", "A") == (None, ["a2"])


def test_a_finished_request_puts_its_connection_last_in_line() -> None:
    t = table(2)
    t.admit("old", "A")
    t.admit("new", "B")
    t.busy("old")
    t.waiting("old")  # it has just been served: "new" has waited longer
    assert t.admit("third", "C") == (None, ["new"])


def test_at_the_total_limit_with_everyone_busy_the_newcomer_is_refused() -> None:
    t = table(2)
    for conn, address in (("a", "A"), ("b", "B")):
        t.admit(conn, address)
        t.busy(conn)
    assert t.admit("c", "C") == ("total", [])
    assert t.total == 2 and t.stats.refused_total == 1


def test_release_forgets_a_connection_once() -> None:
    t = table(5, per_address=5)
    t.admit("a", "A")
    t.admit("b", None)  # no address (a Unix socket): counted in the total only
    t.release("a")
    t.release("a")
    t.waiting("a")
    t.release("b")
    assert t.total == 0 and t.count("A") == 0
    assert t.admit("c", "A") == (None, [])


@pytest.mark.parametrize(
    ("peer", "key"),
    [
        (("203.0.113.7", 5000), "203.0.113.7"),
        (("2001:db8:1:2:aaaa::1", 5000, 0, 0), "2001:db8:1:2::/64"),
        (("2001:db8:1:2:bbbb::9", 5000, 0, 0), "2001:db8:1:2::/64"),
        (("::ffff:198.51.100.4", 5000, 0, 0), "198.51.100.4"),
        ("/run/gateway.sock", None),
        (None, None),
    ],
)
def test_clients_are_counted_by_ipv4_address_or_ipv6_slash_64(peer: object, key: str) -> None:
    assert address_key(peer) == key


def test_auto_limits_leave_headroom_below_the_open_file_limit() -> None:
    assert auto_max_connections(1024) == 768
    assert auto_max_connections(20_000) == 18_000
    assert auto_max_connections(256) == 128
    assert auto_max_connections(1 << 20) == 50_000
    assert auto_max_connections(resource.RLIM_INFINITY) == 50_000
    assert resolve_limits(ClientSettings(), nofile=20_000) == Limits(18_000, 9_000)
    explicit = ClientSettings(max_connections=100, max_connections_per_address=0)
    assert resolve_limits(explicit, nofile=20_000) == Limits(100, 0)


def test_a_limit_above_what_the_open_file_limit_allows_is_named_at_start_up() -> None:
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    assert ClientGuard(ClientSettings()).descriptor_warning() is None
    warning = ClientGuard(ClientSettings(max_connections=nofile)).descriptor_warning()
    assert warning is not None and "raise ulimit -n" in warning


def test_the_quiet_log_writes_a_burst_then_a_line_a_second_naming_what_it_left_out(
    caplog: pytest.LogCaptureFixture,
) -> None:
    now = [0.0]
    log = RateLimitedLog(logging.getLogger("test.quiet"), rate=1.0, burst=3, clock=lambda: now[0])
    with caplog.at_level(logging.WARNING, logger="test.quiet"):
        for n in range(10):
            log.warning("bad request %d", n)
        now[0] = 1.0
        log.warning("bad request %d", 10)
    assert [r.getMessage() for r in caplog.records] == [
        "bad request 0",
        "bad request 1",
        "bad request 2",
        "bad request 10 (and 7 more not logged)",
    ]
