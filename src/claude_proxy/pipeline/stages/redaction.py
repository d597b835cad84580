"""The ``redaction`` stage: sensitive values never leave in what the policy protects.

On the way up it runs every text the API reads through the tenant's policy
(``pii.redact``): masked or pseudonymized values are replaced and the body re-encoded
once, and only when it changed; ``block`` refuses the request with a 400 naming the
entity types (never the values); ``detect`` only counts. On the way back it puts the
values behind pseudonyms back into the answer, JSON or stream (``pii.stream``: before
the replay log, so a resumed stream replays the restored text), and with
``scan_responses`` masks values the answer itself contains.

It fails closed: a request whose text cannot be scanned (a detector error: 500; more
text than ``pii.max_scan_chars``: 413) is refused, never sent as it is. A body is sent
re-encoded from what was scanned, even when nothing changed: a key sent twice cannot
carry an unscanned value past it. Placeholder names the request already holds (a
template's own ``<EMAIL_1>``) are never given to its values. A batch's requests are
redacted like single ones. In the chain only when some policy is on.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from typing import Any

from claude_proxy.errors import GatewayError, InvalidRequest, RequestTooLarge
from claude_proxy.observability import Metrics
from claude_proxy.pii.redact import (
    RAW_PLACEHOLDER,
    Policy,
    Redaction,
    TooMuchText,
    redact_body,
    redact_document_body,
    restore_message,
)
from claude_proxy.pii.settings import PiiSettings, merged
from claude_proxy.pii.stream import StreamRestorer
from claude_proxy.pipeline.call import Call, CallKey, Route
from claude_proxy.pipeline.stage import EventFilter, Outcome
from claude_proxy.pipeline.stages.model_access import creates_batch
from claude_proxy.tenancy import Tenant, TenantDirectory
from claude_proxy.tenancy.overrides import PerTenant

__all__ = ["REDACTION", "Redact", "RedactionFailed"]

REDACTION: CallKey[Redaction] = CallKey("redaction")
_log = logging.getLogger("claude_proxy.pii")
# Bodies above this are scanned in a thread: the event loop serves other requests.
_THREAD_BYTES = 256 * 1024


def _placeholders_in(raw: bytes | None) -> list[str]:
    if not raw or b"<" not in raw:
        return []
    return [name.decode() for name in RAW_PLACEHOLDER.findall(raw)]


class RedactionFailed(GatewayError):
    """The request could not be checked: it is refused rather than sent unchecked."""

    status = 500
    error_type = "api_error"


class Redact:
    name = "redaction"
    routes = frozenset({Route.MESSAGES, Route.COUNT_TOKENS, Route.DOCUMENTS, Route.RELAY})

    def __init__(self, settings: PiiSettings, tenants: TenantDirectory, metrics: Metrics) -> None:
        self._metrics = metrics
        self._policies = PerTenant(
            tenants, lambda own: own.pii, lambda pii: Policy(merged(settings, pii))
        )

    @staticmethod
    def wanted(settings: PiiSettings, tenants: TenantDirectory) -> bool:
        """Whether any policy is on (else the stage stays out of the chain)."""
        each = PerTenant(tenants, lambda own: own.pii, lambda pii: merged(settings, pii))
        return any(pii.active for pii in each)

    def _policy(self, tenant: Tenant | None) -> Policy:
        return self._policies.of(tenant)

    async def on_request(self, call: Call) -> None:
        policy = self._policy(call.tenant)
        if not policy.active:
            return
        if call.route is Route.RELAY:
            if creates_batch(call):
                await self._batch(call, policy)
            return
        redaction = Redaction(policy)
        redaction.reserve(_placeholders_in(call.upstream_body))
        walk = redact_document_body if call.route is Route.DOCUMENTS else redact_body
        body = await self._scan(call, lambda: walk(call.body, redaction))
        self._settle(redaction)
        # Re-encoded even when nothing changed: what goes upstream is then exactly what
        # was scanned (a key sent twice is read by orjson as its last value; the API
        # might read the first, which nobody checked).
        call.set_body(body if body is not None else dict(call.body))
        if redaction.originals or policy.scan_responses:
            call.state[REDACTION] = redaction

    async def _batch(self, call: Call, policy: Policy) -> None:
        if not call.has_body and call.read_body is not None:
            call.load_body(await call.read_body(), acted_on=())
        requests = call.body.get("requests")
        if not isinstance(requests, list):
            return  # the API answers a malformed batch itself
        # One per batch, and masks where the policy says pseudonymize: results come back
        # later, by batch id, with nothing here to restore them.
        redaction = Redaction(policy, pseudonyms=False)

        def redact_all() -> list[Any] | None:
            changed = False
            result = []
            for item in requests:
                redaction.begin()  # max_scan_chars is per request of the batch
                params = item.get("params") if isinstance(item, dict) else None
                new_params = redact_body(params, redaction) if isinstance(params, Mapping) else None
                changed = changed or new_params is not None
                result.append({**item, "params": new_params} if new_params is not None else item)
            return result if changed else None

        new_requests = await self._scan(call, redact_all)
        self._settle(redaction)
        call.set_body({**call.body, "requests": new_requests or requests})

    async def _scan(self, call: Call, scan: Any) -> Any:
        try:
            if len(call.upstream_body or b"") > _THREAD_BYTES:
                return await asyncio.to_thread(scan)
            return scan()
        except TooMuchText:
            # 413: a request that is too large stays too large; a 500 would be retried.
            raise RequestTooLarge(
                "The request has more text than this gateway checks for sensitive data "
                "(pii.max_scan_chars); it was not sent."
            ) from None
        except Exception:
            # The exception may quote a value: logged without it, by type only.
            _log.error(
                "sensitive-data scan failed (%s); request %s refused",
                "detector error",
                call.request_id,
            )
            raise RedactionFailed(
                "The request could not be checked for sensitive data; it was not sent."
            ) from None

    def _settle(self, redaction: Redaction) -> None:
        for (entity, action), count in redaction.counts.items():
            self._metrics.redaction(entity, action, count)
        if redaction.blocked:
            kinds = ", ".join(sorted(redaction.blocked))
            raise InvalidRequest(
                f"The request contains sensitive data ({kinds}) that this gateway does not "
                "send upstream. Remove it and try again."
            )

    def wants_message(self, call: Call) -> bool:
        return REDACTION in call.state

    def on_message(self, call: Call, message: dict[str, Any]) -> dict[str, Any]:
        redaction = call.state.get(REDACTION)
        if redaction is None:
            return message
        if redaction.policy.scan_responses:
            message = restore_message(message, redaction.mask)
        return restore_message(message, redaction.restore)

    def on_finish(self, call: Call, outcome: Outcome) -> None:
        """Values masked in the answer (``scan_responses``), counted once it is over."""
        redaction = call.state.get(REDACTION)
        if redaction is not None:
            for entity, count in redaction.masked_in_answer.items():
                self._metrics.redaction(entity, "mask_response", count)

    def event_filter(self, call: Call) -> EventFilter | None:
        redaction = call.state.get(REDACTION)
        return None if redaction is None else StreamRestorer(redaction)
