"""Deterministic replies: the answer as a pure function of the conversation, then cut.

The answer A is seeded by (model, system, tools, messages without the final prefill) and
is a list of tokens (``bpe``). A prefill P that is a prefix of A yields exactly
``A[len(P):]``, so a caller that re-requests with ``A[:k].rstrip()`` as prefill and joins
the parts gets A back for every cut point k, inside a word or not; a token that the
prefill boundary cuts keeps its tail, which counts as one token. A user "continue" turn
after a partial assistant turn is treated the same way. A prefill that is not a prefix of
A gets a continuation B that stays the same along a chain of such re-requests (see
``_foreign_rest``). ``max_tokens`` and stop sequences cut at token granularity.

With ``SimSettings(echo=True)`` A is instead the text of the last user turn (``echo_text``),
with no tool call or structured output; everything after (prefill, cuts) is the same.
"""

from __future__ import annotations

import random
import re
from dataclasses import dataclass

import orjson

from claude_proxy.sim.bpe import tokenize, truncate
from claude_proxy.sim.schema import instance
from claude_proxy.sim.settings import SimSettings
from claude_proxy.sim.text import natural_length, prose_tokens, seed_from, split_after, tail_words
from claude_proxy.sim.tokens import canonical
from claude_proxy.sim.tools import ToolCall, choose_tool
from claude_proxy.sim.validation import Message, MessagesRequest

__all__ = ["Block", "Reply", "echo_text", "generate", "is_continue_instruction"]

# "continue", "Please continue.", "Continue exactly where you left off." (the gateway's).
_CONTINUE = re.compile(
    r"^(please\s+)?continue(\s+exactly)?(\s+(from\s+)?where\s+you\s+left\s+off)?[.!]*$",
    re.IGNORECASE,
)


@dataclass(slots=True)
class Block:
    """One output content block with its stream deltas (text, token count)."""

    kind: str  # "text" | "thinking" | "tool_use"
    deltas: list[tuple[str, int]]
    signature: str = ""
    tool: ToolCall | None = None
    complete: bool = True  # False: a tool_use cut by max_tokens

    @property
    def tokens(self) -> int:
        return sum(n for _, n in self.deltas)

    @property
    def text(self) -> str:
        return "".join(t for t, _ in self.deltas)

    def shell(self) -> dict[str, object]:
        """The empty block sent in content_block_start."""
        if self.kind == "thinking":
            return {"type": "thinking", "thinking": "", "signature": ""}
        if self.kind == "tool_use" and self.tool is not None:
            return {"type": "tool_use", "id": self.tool.id, "name": self.tool.name, "input": {}}
        return {"type": "text", "text": ""}

    def to_api(self) -> dict[str, object]:
        if self.kind == "thinking":
            return {"type": "thinking", "thinking": self.text, "signature": self.signature}
        if self.kind == "tool_use" and self.tool is not None:
            arguments = self.tool.input if self.complete else {}
            return {
                "type": "tool_use",
                "id": self.tool.id,
                "name": self.tool.name,
                "input": arguments,
            }
        return {"type": "text", "text": self.text}


@dataclass(slots=True)
class Reply:
    blocks: list[Block]
    stop_reason: str
    stop_sequence: str | None
    hidden_tokens: int = 0  # generated but not shown (cut by a stop sequence)

    @property
    def output_tokens(self) -> int:
        return self.hidden_tokens + sum(b.tokens for b in self.blocks)


def is_continue_instruction(message: Message) -> bool:
    if message.role != "user" or len(message.blocks) != 1:
        return False
    block = message.blocks[0]
    return block.get("type") == "text" and bool(_CONTINUE.match(str(block["text"]).strip()))


def _assistant_text(message: Message) -> str:
    return "".join(str(b["text"]) for b in message.blocks if b.get("type") == "text")


def _split_conversation(messages: list[Message]) -> tuple[list[Message], str, bool]:
    """(base conversation, prefill text, reached through a continue turn)."""
    base = list(messages)
    prefill = ""
    via_continue = False
    if base[-1].role == "assistant":
        prefill = _assistant_text(base.pop())
    # Fold [assistant P, user "continue"] pairs from the end: each P joins the prefill.
    while len(base) >= 3 and base[-2].role == "assistant" and is_continue_instruction(base[-1]):
        prefill = _assistant_text(base[-2]) + prefill
        del base[-2:]
        via_continue = True
    return base, prefill.rstrip(), via_continue


def _chunk(tokens: list[str], rng: random.Random) -> list[tuple[str, int]]:
    """Group tokens 1-4 per delta; empty tokens still count."""
    deltas: list[tuple[str, int]] = []
    i = 0
    while i < len(tokens):
        n = min(rng.randint(1, 4), len(tokens) - i)
        deltas.append(("".join(tokens[i : i + n]), n))
        i += n
    return deltas


def _cut(tokens: list[str], budget: int, stops: list[str]) -> tuple[list[str], str, str | None]:
    """Apply stop sequences and the max_tokens budget to the reply tokens."""
    text = "".join(tokens)
    hit: tuple[int, str] | None = None
    for stop in stops:
        at = text.find(stop)
        if at >= 0 and (hit is None or at < hit[0]):
            hit = (at, stop)
    if hit is not None:
        at, stop = hit
        end = at + len(stop)  # the token completing the stop sequence is still generated
        position = 0
        for i, token in enumerate(tokens):
            position += len(token)
            if position < end:
                continue
            if i >= budget:
                break  # max_tokens comes first
            trimmed: list[str] = []
            left = at
            for kept in tokens[: i + 1]:
                trimmed.append(kept[: max(0, left)])
                left -= len(kept)
            return trimmed, "stop_sequence", stop
    if len(tokens) > budget:
        return truncate(tokens, budget), "max_tokens", None
    return tokens, "end_turn", None


def _signature(text: str) -> str:
    digest = seed_from(text.encode()).to_bytes(8, "big").hex()
    return "Er" + (digest * 8)[:96]


def _thinking_block(req: MessagesRequest, seed: int, budget: int) -> Block | None:
    if not req.thinking_on or budget <= 0:
        return None
    rng = random.Random(seed ^ 0x7417)
    count = rng.randint(20, 80)
    if req.thinking is not None and req.thinking.get("type") == "enabled":
        count = min(count, int(req.thinking["budget_tokens"]))
    count = min(count, budget)
    tokens = truncate(prose_tokens(seed ^ 0x7417, count), budget)
    block = Block("thinking", _chunk(tokens, rng))
    block.signature = _signature(block.text)
    return block


def _tokens_for(
    req: MessagesRequest, settings: SimSettings, answer_tokens: int | None
) -> tuple[int, list[str], ToolCall | None]:
    """Seed, the reply's text tokens (prefill removed) and a tool call, if any."""
    base, prefill, via_continue = _split_conversation(req.messages)
    material = canonical(
        [
            req.model.id,
            req.system,
            req.tools,
            [[m.role, m.blocks] for m in base],
        ]
    )
    seed = seed_from(material)
    if settings.echo:
        answer = tokenize(echo_text(base))
        if not prefill:
            return seed, answer, None
        return seed, _after_prefill(answer, material, prefill, via_continue, settings), None
    if answer_tokens is None:
        answer_tokens = natural_length(seed, settings.min_answer_tokens, settings.max_answer_tokens)
    if not prefill:
        if req.output_schema is not None:
            value = instance(req.output_schema, random.Random(seed ^ 0x0750))
            return seed, tokenize(orjson.dumps(value).decode()), None
        call = choose_tool(req, base, seed)
        if call is not None:
            return seed, tokenize(call.intro), call
        return seed, prose_tokens(seed, answer_tokens), None
    answer = prose_tokens(seed, answer_tokens)
    return seed, _after_prefill(answer, material, prefill, via_continue, settings), None


def _after_prefill(
    answer: list[str], material: bytes, prefill: str, via_continue: bool, settings: SimSettings
) -> list[str]:
    """The tokens that follow a (non-empty) prefill: the rest of ``answer`` when the
    prefill is a prefix of it, else a stable foreign continuation."""
    if "".join(answer).startswith(prefill):
        rest = split_after(answer, len(prefill))
    else:
        rest = _foreign_rest(material, prefill, settings)
    if via_continue and settings.continue_overlap_words:
        # Real models repeat a few words when continuing; the gateway must remove them.
        overlap = "".join(tail_words(prefill, settings.continue_overlap_words))
        rest = tokenize(overlap) + rest
    return rest


def echo_text(base: list[Message]) -> str:
    """What echo mode answers: the text of the last user turn, its text blocks joined by
    newlines; a turn without text blocks (only tool results) gives the text inside them."""
    message = next((m for m in reversed(base) if m.role == "user"), None)
    if message is None:
        return ""
    texts = [str(b.get("text", "")) for b in message.blocks if b.get("type") == "text"]
    if not texts:
        for block in message.blocks:
            if block.get("type") != "tool_result":
                continue
            content = block.get("content", "")
            if isinstance(content, str):
                texts.append(content)
            elif isinstance(content, list):
                texts.extend(
                    str(b.get("text", ""))
                    for b in content
                    if isinstance(b, dict) and b.get("type") == "text"
                )
    return "\n".join(texts)


def _foreign_rest(material: bytes, prefill: str, settings: SimSettings) -> list[str]:
    """The continuation of a prefill that is not our answer, stable along a chain of cuts.

    The continuation B starts with a space and is seeded by the prefill up to its first
    space, which a re-request with ``prefill + B[:k]`` shares. Such a re-request is then
    recognised by the earliest space from which the rest of the prefill is a prefix of B,
    and is answered with the rest of B.
    """
    seed = seed_from(material, prefill.partition(" ")[0].encode())
    length = natural_length(seed, settings.min_answer_tokens, settings.max_answer_tokens)
    tokens = prose_tokens(seed, length, lead=" ")
    text = "".join(tokens)
    start = prefill.find(" ", max(0, len(prefill) - len(text)))
    # The two-character check first keeps long prefills with many spaces cheap.
    while start >= 0 and not (
        prefill.startswith(text[:2], start) and text.startswith(prefill[start:])
    ):
        start = prefill.find(" ", start + 1)
    return split_after(tokens, len(prefill) - start if start >= 0 else 0)


def generate(req: MessagesRequest, settings: SimSettings, answer_tokens: int | None) -> Reply:
    """The full reply for a validated request; pure apart from its inputs."""
    if req.max_tokens == 0:  # cache warm-up: no output at all
        return Reply([], "max_tokens", None)
    seed, tokens, call = _tokens_for(req, settings, answer_tokens)
    blocks: list[Block] = []
    hidden = 0
    budget = req.max_tokens
    thinking = _thinking_block(req, seed, budget)
    if thinking is not None:
        blocks.append(thinking)
        budget -= thinking.tokens
    kept, stop_reason, stop_sequence = _cut(tokens, budget, req.stop_sequences)
    rng = random.Random(seed ^ 0xC4C4)
    if "".join(kept):
        blocks.append(Block("text", _chunk(kept, rng)))
    else:
        hidden = len(kept)  # e.g. a stop sequence right at the start: tokens, no text
    budget -= len(kept)
    if call is not None and stop_reason == "end_turn":
        fragments = call.fragments(rng)
        if sum(n for _, n in fragments) <= budget:
            blocks.append(Block("tool_use", fragments, tool=call))
            stop_reason = "tool_use"
        else:
            partial: list[tuple[str, int]] = []
            for fragment in fragments:
                if sum(n for _, n in partial) + fragment[1] > budget:
                    break
                partial.append(fragment)
            blocks.append(Block("tool_use", partial, tool=call, complete=False))
            stop_reason = "max_tokens"
    return Reply(blocks, stop_reason, stop_sequence, hidden)
