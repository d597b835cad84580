"""Sensitive data: detectors validated beyond their patterns, and what a policy does with
what they find (``detect``, ``mask``, ``pseudonymize``, ``block``), in requests and answers."""

from claude_proxy.pii.detect import ENTITIES, CustomPattern, Detector, Finding
from claude_proxy.pii.redact import Policy, Redaction
from claude_proxy.pii.settings import PiiSettings
from claude_proxy.pii.stream import StreamRestorer

__all__ = [
    "ENTITIES",
    "CustomPattern",
    "Detector",
    "Finding",
    "PiiSettings",
    "Policy",
    "Redaction",
    "StreamRestorer",
]
