"""The answer every stream carries: its events, and the simulator's grouping of its tokens."""

from __future__ import annotations

import json
import urllib.request
from dataclasses import dataclass

from _stream_cluster import API_KEY, Cluster
from _stream_load import http_headers, request_body

DELTAS = 64
# message_start, content_block_start, ping | the deltas | content_block_stop, message_delta,
# message_stop: the simulator's event sequence for a one-block text answer.
LEAD_EVENTS, TRAIL_EVENTS = 3, 3
EVENTS = LEAD_EVENTS + DELTAS + TRAIL_EVENTS
CALIBRATION_TOKENS = 400  # enough for 64 deltas of up to 4 tokens each


@dataclass(frozen=True, slots=True)
class Answer:
    """How the simulator groups our conversation's answer into deltas."""

    delta_tokens: list[int]  # tokens of each delta, in order (one word is one token)

    def tokens_for(self, deltas: int) -> int:
        return sum(self.delta_tokens[:deltas])

    def schedule(self, deltas: int, per_token_ms: float) -> list[float]:
        """Scheduled gap before each delta: the simulator paces tokens, not deltas."""
        return [n * per_token_ms for n in self.delta_tokens[:deltas]]


def calibrate(cluster: Cluster) -> Answer:
    """Read one long answer directly and count the words (= tokens) of each delta."""
    request = urllib.request.Request(
        cluster.url("direct-sse"),
        data=request_body(),
        headers=http_headers(API_KEY, CALIBRATION_TOKENS),
        method="POST",
    )
    with urllib.request.urlopen(request, timeout=30) as response:
        raw = response.read().decode()
    tokens = []
    total = None
    for line in raw.splitlines():
        if not line.startswith("data: "):
            continue
        payload = json.loads(line[6:])
        if payload["type"] == "content_block_delta":
            tokens.append(len(payload["delta"]["text"].split()))
        elif payload["type"] == "message_delta":
            total = payload["usage"]["output_tokens"]
    if total != sum(tokens) or len(tokens) < DELTAS:
        raise RuntimeError(f"unexpected calibration answer: {len(tokens)} deltas, {total} tokens")
    return Answer(tokens)
