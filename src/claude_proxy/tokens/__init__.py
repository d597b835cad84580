"""Token counts the gateway makes itself: estimates that err high, or the upstream's."""

from claude_proxy.tokens.counter import EstimatingCounter, TokenCounter
from claude_proxy.tokens.estimate import estimate_input_tokens, estimate_text_tokens

__all__ = [
    "EstimatingCounter",
    "TokenCounter",
    "estimate_input_tokens",
    "estimate_text_tokens",
]
