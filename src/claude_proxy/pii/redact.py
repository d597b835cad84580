"""Apply a policy to a request's texts, and undo pseudonyms in what comes back.

``Policy`` is a tenant's settings compiled once (its detector, an action per entity).
``Redaction`` is one request's work: every text the API sees goes through ``text()``,
which replaces what the policy masks or pseudonymizes, counts what it found, and
remembers which entity types a ``block`` policy refuses. Pseudonyms are numbered per
entity type in order of first appearance, so a conversation that is sent again with a
new turn gets the same placeholders for the same values (the history comes first):
within one conversation a value keeps one pseudonym.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from typing import Any

import orjson

from claude_proxy.pii.detect import ENTITIES, CustomPattern, Detector, Finding
from claude_proxy.pii.settings import Mode, PiiSettings
from claude_proxy.pii.validators import compact

__all__ = [
    "PLACEHOLDER",
    "RAW_PLACEHOLDER",
    "Policy",
    "Redaction",
    "TooMuchText",
    "redact_body",
    "redact_document_body",
    "restore_message",
]

# What a pseudonym looks like: <EMAIL_1>, <CREDIT_CARD_12>, <EMPLOYEE_ID_3>.
PLACEHOLDER = re.compile(r"<([A-Z][A-Z0-9_]*_[0-9]+)>")
# The same, in a raw request body.
RAW_PLACEHOLDER = re.compile(PLACEHOLDER.pattern.encode())
_NUMERIC = frozenset({"CREDIT_CARD", "US_SSN", "PHONE", "CN_ID", "IBAN"})


class TooMuchText(Exception):
    """More text than the policy scans: the request is refused, not sent unchecked."""


class Policy:
    """A tenant's redaction settings, compiled."""

    def __init__(self, settings: PiiSettings) -> None:
        self.settings = settings
        custom = [
            CustomPattern(entity.name, re.compile(entity.pattern))
            for entity in settings.custom
            if settings.action(entity.name) != "off"
        ]
        self.detector = Detector(settings.scanned(), custom)
        names = [*ENTITIES, *(entity.name for entity in settings.custom)]
        self.actions: dict[str, Mode] = {name: settings.action(name) for name in names}
        self.active = settings.active
        self.scan_responses = settings.scan_responses and self.active
        self.max_chars = settings.max_scan_chars


class Redaction:
    """One request's redaction: its pseudonyms, counts and refusals."""

    def __init__(self, policy: Policy, *, pseudonyms: bool = True) -> None:
        """``pseudonyms=False``: mask where the policy says pseudonymize (nothing will
        come back through this gateway to restore)."""
        self.policy = policy
        self._pseudonyms = pseudonyms
        self.counts: Counter[tuple[str, str]] = Counter()  # (entity, action) -> values
        self.masked_in_answer: Counter[str] = Counter()
        self.blocked: set[str] = set()
        self.originals: dict[str, str] = {}  # placeholder (without <>) -> original value
        self._placeholders: dict[str, str] = {}  # normalised value -> placeholder
        self._numbers: Counter[str] = Counter()
        self._reserved: set[str] = set()
        self._scanned = 0

    def begin(self) -> None:
        """A new text to scan (a batch's next request): ``max_scan_chars`` counts afresh."""
        self._scanned = 0

    def text(self, text: str) -> str:
        """The text as it may go upstream."""
        self._scanned += len(text)
        if self._scanned > self.policy.max_chars:
            raise TooMuchText()
        findings = self.policy.detector.find(text)
        if not findings:
            return text
        actions = self.policy.actions
        pieces: list[str] = []
        position = 0
        for finding in findings:
            action = actions[finding.entity]
            self.counts[finding.entity, action] += 1
            if action == "block":
                self.blocked.add(finding.entity)
            if action in ("detect", "block"):
                continue
            pieces.append(text[position : finding.start])
            pieces.append(self._replacement(finding, text, action))
            position = finding.end
        if not pieces:
            return text
        pieces.append(text[position:])
        return "".join(pieces)

    def mask(self, text: str) -> str:
        """An answer's text with what the policy finds masked (``scan_responses``)."""
        return self.mask_found(text, self.policy.detector.find(text))

    def mask_found(self, text: str, findings: list[Finding], offset: int = 0) -> str:
        """``text`` with ``findings`` (offsets shifted by ``offset``) masked, for the entity
        types the policy keeps from the upstream; ``detect`` ones are only counted."""
        pieces: list[str] = []
        position = 0
        for finding in findings:
            start, end = finding.start - offset, finding.end - offset
            if start < position or end > len(text):
                continue
            if self.policy.actions[finding.entity] in ("off", "detect"):
                continue
            self.masked_in_answer[finding.entity] += 1
            pieces += (text[position:start], f"[{finding.entity}]")
            position = end
        if not pieces:
            return text
        pieces.append(text[position:])
        return "".join(pieces)

    def reserve(self, names: Iterable[str]) -> None:
        """Placeholder names the request already holds (a template's own ``<EMAIL_1>``):
        never given to a value, so an answer's ``<EMAIL_1>`` is not taken for one."""
        self._reserved.update(names)

    def restore(self, text: str) -> str:
        """Placeholders of this request back to their values (others stay as they are)."""
        if "<" not in text or not self.originals:
            return text
        return PLACEHOLDER.sub(self._original, text)

    def restore_json_text(self, text: str) -> str:
        """``restore`` inside JSON text (partial tool input): values go in JSON-escaped."""
        if "<" not in text or not self.originals:
            return text
        return PLACEHOLDER.sub(self._json_original, text)

    def _original(self, match: re.Match[str]) -> str:
        return self.originals.get(match.group(1), match.group())

    def _json_original(self, match: re.Match[str]) -> str:
        value = self.originals.get(match.group(1))
        return match.group() if value is None else json_fragment(value)

    def _replacement(self, finding: Finding, text: str, action: Mode) -> str:
        entity = finding.entity
        if action != "pseudonymize" or not self._pseudonyms:
            return f"[{entity}]"
        value = text[finding.start : finding.end]
        key = f"{entity}\0{_normalised(entity, value)}"
        placeholder = self._placeholders.get(key)
        if placeholder is None:
            self._numbers[entity] += 1
            while f"{entity}_{self._numbers[entity]}" in self._reserved:
                self._numbers[entity] += 1
            placeholder = f"{entity}_{self._numbers[entity]}"
            self._placeholders[key] = placeholder
            self.originals[placeholder] = value
        return f"<{placeholder}>"


def _normalised(entity: str, value: str) -> str:
    if entity in _NUMERIC:
        return compact(value).upper()
    if entity == "EMAIL":
        return value.lower()
    return value


# -- walking a request and an answer -------------------------------------------------

_Text = Callable[[str], str]


def redact_body(body: Mapping[str, Any], redaction: Redaction) -> dict[str, Any] | None:
    """The body with every text the API reads redacted, or None if nothing changed.

    Texts: ``system``; message content as a string or blocks (text, tool inputs and
    results, documents' text and titles, search results). Images, thinking blocks and
    tool definitions are the client's or the model's own and pass untouched.
    """
    fix = redaction.text
    changed: dict[str, Any] = {}
    system = body.get("system")
    if system is not None:
        new_system = _content(system, fix)
        if new_system is not system:
            changed["system"] = new_system
    messages = body.get("messages")
    if isinstance(messages, list):
        new_messages = _each(messages, lambda m: _message(m, fix))
        if new_messages is not messages:
            changed["messages"] = new_messages
    metadata = body.get("metadata")
    if isinstance(metadata, dict):  # user_id is often an email
        changed_metadata: dict[str, Any] = {}
        _field(metadata, "user_id", fix, changed_metadata)
        if changed_metadata:
            changed["metadata"] = {**metadata, **changed_metadata}
    if not changed:
        return None
    return {**body, **changed}


def redact_document_body(body: Mapping[str, Any], redaction: Redaction) -> dict[str, Any] | None:
    """``POST /v1/documents``: its document, instruction and system, or None if unchanged."""
    changed = {}
    for name in ("document", "instruction", "system"):
        value = body.get(name)
        if isinstance(value, str):
            fixed = redaction.text(value)
            if fixed != value:
                changed[name] = fixed
    return {**body, **changed} if changed else None


def restore_message(message: dict[str, Any], fix: _Text) -> dict[str, Any]:
    """A Messages response with ``fix`` applied to its text and tool inputs."""
    content = message.get("content")
    if isinstance(content, list):
        new_content = _each(content, lambda block: _block(block, fix))
        if new_content is not content:
            return {**message, "content": new_content}
    return message


def _each(items: list[Any], fix: Callable[[Any], Any]) -> list[Any]:
    """``items`` with ``fix`` applied; the same list object when nothing changed."""
    result: list[Any] | None = None
    for index, item in enumerate(items):
        fixed = fix(item)
        if fixed is not item:
            if result is None:
                result = list(items)
            result[index] = fixed
    return items if result is None else result


def _message(message: Any, fix: _Text) -> Any:
    if not isinstance(message, dict):
        return message
    content = message.get("content")
    new_content = _content(content, fix)
    return message if new_content is content else {**message, "content": new_content}


def _content(content: Any, fix: _Text) -> Any:
    if isinstance(content, str):
        return _json_strings(content, fix)
    if isinstance(content, list):
        return _each(content, lambda block: _block(block, fix))
    return content


def _block(block: Any, fix: _Text) -> Any:
    if not isinstance(block, dict):
        return block
    kind = block.get("type")
    changed: dict[str, Any] = {}
    if kind == "text":
        _field(block, "text", fix, changed)
        citations = block.get("citations")
        if isinstance(citations, list):  # an earlier answer's quotes, sent back
            new_citations = _each(citations, lambda c: _citation(c, fix))
            if new_citations is not citations:
                changed["citations"] = new_citations
    elif kind in ("tool_use", "server_tool_use", "mcp_tool_use"):
        new_input = _json_strings(block.get("input"), fix)
        if new_input is not block.get("input"):
            changed["input"] = new_input
    elif kind in ("tool_result", "mcp_tool_result", "search_result"):
        new_content = _content(block.get("content"), fix)
        if new_content is not block.get("content"):
            changed["content"] = new_content
        _field(block, "title", fix, changed)
        _field(block, "source", fix, changed)
    elif kind == "document":
        _field(block, "title", fix, changed)
        _field(block, "context", fix, changed)
        source = block.get("source")
        if isinstance(source, dict):
            new_source = _document_source(source, fix)
            if new_source is not source:
                changed["source"] = new_source
    return {**block, **changed} if changed else block


def _citation(citation: Any, fix: _Text) -> Any:
    if not isinstance(citation, dict):
        return citation
    changed: dict[str, Any] = {}
    _field(citation, "cited_text", fix, changed)
    _field(citation, "document_title", fix, changed)
    return {**citation, **changed} if changed else citation


def _document_source(source: dict[str, Any], fix: _Text) -> dict[str, Any]:
    if source.get("type") == "text" and isinstance(source.get("data"), str):
        data = fix(source["data"])
        return source if data == source["data"] else {**source, "data": data}
    if source.get("type") == "content":
        content = _content(source.get("content"), fix)
        return source if content is source.get("content") else {**source, "content": content}
    return source


def _field(block: dict[str, Any], name: str, fix: _Text, changed: dict[str, Any]) -> None:
    value = block.get(name)
    if isinstance(value, str):
        fixed = fix(value)
        if fixed != value:
            changed[name] = fixed


def _json_strings(value: Any, fix: _Text) -> Any:
    """Every string inside a JSON value (keys too, which may hold values: {"bob@x.io": 1})."""
    if isinstance(value, str):
        fixed = fix(value)
        return value if fixed == value else fixed
    if isinstance(value, list):
        return _each(value, lambda item: _json_strings(item, fix))
    if isinstance(value, dict):
        changed = False
        result: dict[str, Any] = {}
        for key, item in value.items():
            new_key = fix(key) if isinstance(key, str) else key
            new_item = _json_strings(item, fix)
            changed = changed or new_key != key or new_item is not item
            result[new_key] = new_item
        return result if changed else value
    return value


def json_texts(value: Any, fix: _Text) -> Any:
    """A JSON value with ``fix`` applied to every string in it, keys included."""
    return _json_strings(value, fix)


def json_fragment(value: str) -> str:
    """``value`` as it appears inside a JSON string (for partial tool-input JSON)."""
    return orjson.dumps(value).decode()[1:-1]
