"""Metrics: exact counts in the exposition, bounded labels, nothing secret exported."""

from __future__ import annotations

import random
import string

import pytest
from prometheus_client import REGISTRY
from prometheus_client.parser import text_string_to_metric_families

from claude_proxy.admission.base import Usage
from claude_proxy.observability import Metrics
from claude_proxy.observability.snapshot import histogram_quantile

Series = dict[tuple[str, frozenset[tuple[str, str]]], float]
SONNET = "claude-sonnet-4-5-20250929"


def scrape(metrics: Metrics) -> Series:
    body, content_type = metrics.render()
    assert content_type.startswith("text/plain; version=0.0.4")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(body.decode())
        for sample in family.samples
    }


def value(series: Series, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` whose labels include ``labels``."""
    wanted = set(labels.items())
    return sum(v for (n, ls), v in series.items() if n == name and wanted <= ls)


def finish(metrics: Metrics, status: int, error_type: str | None = None, **kw: object) -> None:
    stream = bool(kw.pop("stream", False))
    metrics.request_started()
    args: dict[str, object] = {
        "tenant": "acme",
        "model": SONNET,
        "stream": stream,
        "status": status,
        "duration": 0.3,
        "error_type": error_type,
    }
    args.update(kw)
    metrics.request_finished(**args)  # type: ignore[arg-type]


def test_known_mix_of_requests_gives_exact_counts() -> None:
    m = Metrics(["acme", "globex"])
    usage = Usage(input_tokens=100, output_tokens=20, cache_read_input_tokens=7)
    for _ in range(3):
        finish(m, 200, usage=usage, overhead=0.0005)
    finish(m, 200, stream=True, ttft=0.4, usage=usage, duration=2.5)
    finish(m, 429, "rate_limit_error")
    finish(m, 529, "overloaded_error")
    finish(m, 529)  # type derived from the status
    finish(m, 500, "api_error", tenant="globex")
    finish(m, 499, "client_disconnect", stream=True)
    m.upstream_attempt("primary", "ok", 0.2)
    m.upstream_attempt("primary", "http_529", 0.1)
    m.upstream_attempt("backup", "ok", 0.3)
    m.retry()
    m.heal()
    m.set_breaker("primary", "half_open")
    m.set_breaker("backup", 0)

    s = scrape(m)
    assert value(s, "api_request_duration_seconds_count") == 9
    assert value(s, "api_request_duration_seconds_count", status_class="2xx") == 4
    assert value(s, "api_request_duration_seconds_count", stream="yes") == 2
    assert value(s, "api_request_duration_seconds_bucket", le="1.0") == 8  # all but the 2.5 s
    assert value(s, "api_errors_total") == 5
    assert value(s, "api_errors_total", error_type="rate_limit", status_class="4xx") == 1
    assert value(s, "api_errors_total", error_type="overloaded", status_class="5xx") == 2
    assert value(s, "api_errors_total", error_type="api_error", tenant="globex") == 1
    assert value(s, "api_errors_total", error_type="client_disconnect", stream="yes") == 1
    assert value(s, "api_errors_total", error_type="none") == 0
    # Only successes confirm a model name; errors before any success would be "other".
    assert value(s, "api_request_duration_seconds_count", model="claude-sonnet-4-5") == 9
    assert value(s, "api_tokens_total", type="input") == 400
    assert value(s, "api_tokens_total", type="output") == 80
    assert value(s, "api_tokens_total", type="cache_read") == 28
    assert value(s, "api_tokens_total", type="cache_write") == 0
    assert value(s, "api_time_to_first_token_seconds_count", model="claude-sonnet-4-5") == 1
    assert value(s, "api_gateway_overhead_seconds_count") == 3
    assert value(s, "api_requests_in_flight") == 0
    assert value(s, "api_upstream_attempts_total", deployment="primary") == 2
    assert value(s, "api_upstream_attempts_total", outcome="http_529") == 1
    assert value(s, "api_upstream_attempt_duration_seconds_count", deployment="backup") == 1
    assert value(s, "api_upstream_retries_total") == 1
    assert value(s, "api_stream_heals_total") == 1
    assert value(s, "api_circuit_breaker_state", deployment="primary") == 1
    assert value(s, "api_circuit_breaker_state", deployment="backup") == 0


def test_gauges_follow_the_calls() -> None:
    m = Metrics(["acme"])
    m.request_started()
    m.request_started()
    m.stream_opened()
    m.set_window(12)
    m.tenant_waiting("acme", 4)
    s = scrape(m)
    assert value(s, "api_requests_in_flight") == 2
    assert value(s, "api_open_streams") == 1
    assert value(s, "api_upstream_window") == 12
    assert value(s, "api_queue_depth", tenant="acme") == 4
    m.stream_closed()
    m.set_window(8)
    m.tenant_waiting("acme", -4)
    m.tenant_waiting("intruder", 1)  # not a configured tenant: counted as "other"
    m.tenant_holding("intruder", 3)
    s = scrape(m)
    assert value(s, "api_open_streams") == 0
    assert value(s, "api_upstream_window") == 8
    assert value(s, "api_queue_depth", tenant="acme") == 0  # its waits ended
    assert value(s, "api_queue_depth", tenant="other") == 1
    assert value(s, "api_tenant_in_flight", tenant="other") == 3


def test_later_features_counters_exist_and_count() -> None:
    m = Metrics()
    m.resume()
    m.continuation()
    m.redaction("EMAIL", "mask", 3)
    m.redaction("credit card!", "mask")  # malformed entity names are "other"
    m.redaction("EMAIL", "bogus action!")
    m.session_cache_hit()
    m.token_gap(0.02)
    m.queue_wait(None, 0.5)
    s = scrape(m)
    assert value(s, "api_stream_resumes_total") == 1
    assert value(s, "api_continuations_total") == 1
    assert value(s, "api_redactions_total", entity="email", action="mask") == 3
    assert value(s, "api_redactions_total", entity="other", action="mask") == 1
    assert value(s, "api_redactions_total", entity="email", action="other") == 1
    assert value(s, "api_session_cache_hits_total") == 1
    assert value(s, "api_inter_token_gap_seconds_count") == 1
    assert value(s, "api_queue_wait_seconds_count", tenant="default") == 1


def random_model(rng: random.Random) -> str:
    alphabet = string.ascii_letters + string.digits + "-_./:@ {}\"'\\\n"
    body = "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 60)))
    return rng.choice(["", "claude-", "claude-sonnet-4-5-", "sk-ant-"]) + body


def test_label_cardinality_is_bounded() -> None:
    rng = random.Random(6)
    m = Metrics(["acme"])
    for i in range(1000):
        name = random_model(rng)
        finish(m, 200 if i % 2 else 404, model=name, tenant=f"tenant-{i}", stream=bool(i % 3))
    finish(m, 200, model="claude-haiku-4-5-20251001")
    s = scrape(m)
    label_values = {
        label: {dict(ls)[label] for (n, ls) in s if n == "api_request_duration_seconds_count"}
        for label in ("tenant", "model", "status_class", "error_type", "stream")
    }
    assert label_values["tenant"] == {"other", "acme"}
    assert "claude-haiku-4-5" in label_values["model"]
    assert all(len(v) <= 40 for v in label_values["model"])
    # Random well-shaped names that succeed are admitted only up to the limit (64).
    assert len(label_values["model"]) <= 66
    assert label_values["status_class"] == {"2xx", "4xx"}
    series = [key for key in s if key[0] == "api_request_duration_seconds_count"]
    assert len(series) <= 2 * 66 * 2 * 2


def test_model_names_are_normalised() -> None:
    m = Metrics(models=["claude-opus-4-1-20250805"])
    finish(m, 529, model="claude-opus-4-1")  # known from the config: labelled at once
    finish(m, 529, model="claude-3-7-sonnet")  # not yet seen to succeed
    finish(m, 200, model="claude-3-7-sonnet@20250219")
    finish(m, 200, model="claude-" + "x" * 40)  # too long
    finish(m, 200, model="Claude-Opus")  # wrong shape
    s = scrape(m)
    models = {dict(ls)["model"] for (n, ls) in s if n == "api_request_duration_seconds_count"}
    assert models == {"claude-opus-4-1", "other", "claude-3-7-sonnet"}
    assert value(s, "api_request_duration_seconds_count", model="other") == 3


SECRET = "sk-ant-api03-SECRETSECRETSECRET"


def test_secrets_never_reach_the_exposition() -> None:
    m = Metrics(["acme"])
    finish(m, 200, model=SECRET, tenant=SECRET, stream=True, ttft=0.1, usage=Usage(1, 1))
    finish(m, 401, "authentication_error", model=f"claude-{SECRET.lower()}", tenant=SECRET)
    finish(m, 400, error_type=SECRET, model="claude-opus-4-1", tenant="acme")
    m.upstream_attempt(SECRET + " Bearer x", SECRET, 0.1)
    m.redaction(SECRET, SECRET)
    m.tenant_waiting(SECRET, 1)
    m.queue_wait(SECRET, 0.1)
    body = m.render()[0].decode()
    assert "SECRET" not in body.upper().replace("SECRETS", "")
    assert "sk-ant" not in body
    assert value(scrape(m), "api_errors_total", error_type="api_error") == 1


def test_each_app_has_its_own_registry() -> None:
    before = {name for name in REGISTRY._names_to_collectors if name.startswith("api_")}
    first, second = Metrics(), Metrics()
    first.retry()
    assert value(scrape(first), "api_upstream_retries_total") == 1
    assert value(scrape(second), "api_upstream_retries_total") == 0
    after = {name for name in REGISTRY._names_to_collectors if name.startswith("api_")}
    assert before == after == set()


def test_snapshot_has_plain_numbers_for_the_dashboard() -> None:
    now = 1_700_000_000.0
    m = Metrics(["acme", "globex"], clock=lambda: now)
    for seconds in (0.2, 0.4, 0.6, 0.8):
        finish(m, 200, duration=seconds, ttft=seconds / 2, usage=Usage(10, 5), stream=True)
    finish(m, 529, tenant="globex")
    m.request_started()
    m.stream_opened()
    m.set_tenant_load("globex", in_flight=2, queued=3)
    m.set_breaker("primary", "open")
    snap = m.snapshot()
    assert snap["time"] == now
    assert snap["requests"] == 5
    assert snap["errors"] == 1
    assert snap["errors_by_type"] == {"overloaded": 1}
    assert snap["in_flight"] == 1
    assert snap["open_streams"] == 1
    assert snap["tokens"] == {"input": 40, "output": 20, "cache_read": 0, "cache_write": 0}
    assert snap["tenants"]["globex"] == {"requests": 1, "errors": 1, "in_flight": 2, "queued": 3}
    assert snap["tenants"]["acme"]["requests"] == 4
    assert snap["upstream"]["breakers"] == {"primary": 2}
    assert 0.25 <= snap["latency"]["p50"] <= 0.5
    assert 0.5 <= snap["latency"]["p95"] <= 1.0
    assert snap["ttft"]["count"] == 4
    assert snap["latency"]["buckets"][-1] == [600.0, 5]


@pytest.mark.parametrize(
    ("q", "expected"),
    [(0.5, 1.0), (0.25, 0.5), (0.95, 1.9), (1.0, 2.0)],
)
def test_histogram_quantile_interpolates_like_prometheus(q: float, expected: float) -> None:
    buckets = [(1.0, 2.0), (2.0, 4.0), (float("inf"), 4.0)]
    assert histogram_quantile(q, buckets) == pytest.approx(expected)


def test_histogram_quantile_edge_cases() -> None:
    assert histogram_quantile(0.5, []) is None
    assert histogram_quantile(0.5, [(1.0, 0.0), (float("inf"), 0.0)]) is None
    # Everything above the largest bound: the bound is the best estimate.
    assert histogram_quantile(0.9, [(1.0, 0.0), (float("inf"), 5.0)]) == 1.0


def test_multiprocess_dir_needs_the_environment_set_before_import(tmp_path: object) -> None:
    with pytest.raises(ValueError, match="PROMETHEUS_MULTIPROC_DIR"):
        Metrics(multiprocess_dir=str(tmp_path))
