"""The ``policies`` stage: the configured rules set or clamp generation parameters.

After ``session_load`` (a session's history is in the body, so the turn number counts
the whole conversation the upstream gets) and before redaction (which then scans the
final body once). The rules read the body, the tenant and the headers; what they did is
kept on the call for the ``x-proxy-policy`` response header and counted in the metrics.
A request that matches no rule, or whose rules change nothing, goes up byte for byte.
"""

from __future__ import annotations

from collections.abc import Sequence

from claude_proxy.observability import Metrics
from claude_proxy.pipeline.call import Call, CallKey, Route
from claude_proxy.policies import (
    PolicyReport,
    PolicyRoute,
    PolicyRule,
    RequestFacts,
    Target,
    apply_policies,
    matching,
)

__all__ = ["POLICY", "POLICY_HEADER", "ApplyPolicies"]

POLICY: CallKey[PolicyReport] = CallKey("policy")
POLICY_HEADER = "x-proxy-policy"


class ApplyPolicies:
    name = "policies"
    routes = frozenset({Route.MESSAGES, Route.DOCUMENTS})

    def __init__(self, rules: Sequence[PolicyRule], metrics: Metrics) -> None:
        self._rules = tuple(rules)
        self._metrics = metrics

    async def on_request(self, call: Call) -> None:
        if not call.has_body:
            return
        route: PolicyRoute = "documents" if call.route is Route.DOCUMENTS else "messages"
        facts = RequestFacts(
            call.body,
            route=route,
            tenant=call.tenant.name if call.tenant is not None else None,
            headers=call.headers,
        )
        rules = matching(self._rules, facts)
        if not rules:
            return
        betas = ",".join(call.headers.getall("anthropic-beta", ()))
        version = call.headers.get("anthropic-version")
        target = Target.of(route, facts.model, version, betas)
        body, report = apply_policies(call.body, rules, target)
        if body is not None:
            call.set_body(body)
        call.state[POLICY] = report
        for applied in report.applied:
            self._metrics.policy_applied(applied.policy, applied.parameter, applied.action)
        for skipped in report.skipped:
            self._metrics.policy_skipped(skipped.policy, skipped.parameter, skipped.reason)
