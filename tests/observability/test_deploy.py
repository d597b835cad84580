"""The deploy files parse, and every expression in them names metrics the gateway exports."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
import yaml

from claude_proxy.observability import Metrics
from tests.observability.promql import PromQLError, check_expression

DEPLOY = Path(__file__).resolve().parents[2] / "deploy"
# Series Prometheus itself adds to every scrape.
BUILTIN = frozenset({"up", "scrape_duration_seconds", "scrape_samples_scraped"})


def exported_names() -> set[str]:
    """Series names a fresh Metrics can expose, with the suffixes of each metric type."""
    suffixes = {
        "counter": ("_total",),
        "histogram": ("_bucket", "_sum", "_count"),
        "gauge": ("",),
    }
    return {
        family.name + suffix
        for family in Metrics().registry.collect()
        for suffix in suffixes[family.type]
    }


def alert_rules() -> list[dict[str, Any]]:
    doc = yaml.safe_load((DEPLOY / "alerts.yml").read_text())
    return [rule for group in doc["groups"] for rule in group["rules"]]


def grafana_targets() -> list[dict[str, Any]]:
    doc = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    return [target for panel in doc["panels"] for target in panel["targets"]]


def test_scrape_config_is_the_design_notes_job() -> None:
    doc = yaml.safe_load((DEPLOY / "prometheus.yml").read_text())
    (job,) = doc["scrape_configs"]
    assert job["job_name"] == "claude_monitor"
    assert job["metrics_path"] == "/metrics"
    (static,) = job["static_configs"]
    assert static["targets"] == ["localhost:8000"]
    assert static["labels"] == {"service": "claude_proxy"}
    assert doc["rule_files"] == ["alerts.yml"]


def test_alerts_cover_what_the_issue_asks_for() -> None:
    rules = alert_rules()
    exprs = " ".join(rule["expr"] for rule in rules)
    assert "rate(api_errors_total[5m])" in exprs
    assert (
        "histogram_quantile(0.95, sum by (le) (rate(api_request_duration_seconds_bucket[5m])))"
        in exprs
    )
    assert 'error_type="overloaded"' in exprs
    assert "api_queue_depth" in exprs
    assert "api_circuit_breaker_state" in exprs
    for rule in rules:
        assert rule["alert"].startswith("ClaudeProxy")
        assert rule["labels"]["severity"] in {"warning", "critical"}
        assert rule["annotations"]["summary"]


@pytest.mark.parametrize(
    "expr",
    [rule["expr"] for rule in alert_rules()] + [target["expr"] for target in grafana_targets()],
)
def test_every_expression_names_exported_metrics(expr: str) -> None:
    names = check_expression(expr)
    assert names, expr
    assert names <= exported_names() | BUILTIN, names - exported_names()


def test_grafana_dashboard_is_importable() -> None:
    doc = json.loads((DEPLOY / "grafana-dashboard.json").read_text())
    ids = [panel["id"] for panel in doc["panels"]]
    assert len(ids) == len(set(ids))
    for panel in doc["panels"]:
        assert panel["datasource"]["uid"] == "${DS_PROMETHEUS}"
        assert {"x", "y", "w", "h"} <= panel["gridPos"].keys()
        assert panel["gridPos"]["x"] + panel["gridPos"]["w"] <= 24
    assert doc["__inputs"][0]["name"] == "DS_PROMETHEUS"


def test_every_exported_metric_is_on_the_grafana_dashboard() -> None:
    used: set[str] = set()
    for target in grafana_targets():
        used |= check_expression(target["expr"])
    families = {name.removesuffix("_bucket") for name in used}
    missing = {
        family.name
        for family in Metrics().registry.collect()
        if not any(name.startswith(family.name) for name in families)
    }
    assert not missing


@pytest.mark.parametrize(
    ("expr", "problem"),
    [
        ("sum(rate(api_errors_total[5m])", "unclosed"),
        ("sum(rate(api_errors_total[5m])))", "unbalanced"),
        ("sum(rat(api_errors_total[5m]))", "unknown function"),
        ("rate(api_errors_total[5 minutes])", "unexpected"),
        ("sum by (le) (rate([5m]))", "range"),
    ],
)
def test_checker_rejects_malformed_expressions(expr: str, problem: str) -> None:
    with pytest.raises(PromQLError, match=problem):
        check_expression(expr)


def test_checker_finds_names_but_not_labels_or_functions() -> None:
    expr = (
        'histogram_quantile(0.95, sum by (le, tenant) (rate(a_bucket{tenant="x", le!="1"}[5m])))'
        " / on (tenant) group_left b"
    )
    assert check_expression(expr) == {"a_bucket", "b"}
