"""One answer to a validated request, before it is paced out: the message, its reply and
usage. The HTTP handler streams or sends it; a batch keeps it as a result."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from claude_proxy.errors import new_id
from claude_proxy.sim.cache import CacheUsage
from claude_proxy.sim.generation import Reply, generate
from claude_proxy.sim.tokens import prompt_units
from claude_proxy.sim.validation import MessagesRequest

if TYPE_CHECKING:
    from claude_proxy.sim.state import SimState

__all__ = ["Answer", "answer", "units"]


def units(req: MessagesRequest) -> list[Any]:
    return prompt_units(req.tools, req.system, [(m.role, m.blocks) for m in req.messages])


@dataclass(slots=True)
class Answer:
    message: dict[str, Any]  # the message_start shape: no content, no stop reason yet
    reply: Reply
    usage: dict[str, Any]  # input side; output_tokens comes with the reply
    cache: CacheUsage

    def whole(self) -> dict[str, Any]:
        """The complete message, as a JSON answer carries it."""
        reply = self.reply
        return {
            **self.message,
            "content": [b.to_api() for b in reply.blocks],
            "stop_reason": reply.stop_reason,
            "stop_sequence": reply.stop_sequence,
            "usage": {**self.usage, "output_tokens": reply.output_tokens},
        }


def answer(state: SimState, req: MessagesRequest, answer_tokens: int | None = None) -> Answer:
    """Account the prompt cache and generate the reply (counted in the stats)."""
    cache = state.cache.account(
        req.model.id, units(req), req.cache_control, req.model.min_cacheable_tokens
    )
    reply = generate(req, state.settings, answer_tokens)
    state.stats.output_tokens += reply.output_tokens
    message: dict[str, Any] = {
        "id": new_id("msg_01"),
        "type": "message",
        "role": "assistant",
        "model": req.model_name,
        "content": [],
        "stop_reason": None,
        "stop_sequence": None,
    }
    return Answer(message, reply, {**cache.to_api(), "service_tier": "standard"}, cache)
