"""What a request asks for, by simple documented heuristics, and where it is in a conversation.

``detect_task`` says ``extraction`` (structured output: JSON, fields, labels), ``writing``
(open-ended prose) or ``other``. The first sign found decides, in this order:

1. ``output_config.format`` (or the older ``output_format``): a JSON schema, so extraction;
2. ``tool_choice`` forcing a tool (``any`` or ``tool``): the answer is a tool's input;
3. an assistant prefill starting with ``{``, ``[`` or a ```` ```json ```` fence;
4. words in the system prompt or the last user turn (its first and last 4,000
   characters): extraction words (extract, classify, categorise, "as JSON",
   "JSON object", "structured output", "named entities", "fill in the fields"), unless
   negated right before ("do not return JSON", "don't classify"), win over writing
   words (a story, poem, essay, article, blog post, speech, letter... to write, compose,
   draft or tell; brainstorm; creative writing), unless the thing to write is code: a
   script or an email next to a code word ("a Python script", "a bash script", "an
   email validation regex");
5. otherwise ``other`` (questions, code, chat).

``user_turns`` counts the turns of the conversation the upstream gets: user messages that
start a turn (not a tool result, not right after another user message), as the session
budget counts them.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal

__all__ = ["TASKS", "Task", "detect_task", "last_turn_text", "user_turns"]

Task = Literal["extraction", "writing", "other"]
TASKS: tuple[Task, ...] = ("extraction", "writing", "other")

# The part of a long prompt read for words: instructions sit at its start or its end.
_EDGE = 4000

_EXTRACTION = re.compile(
    r"\bextract(?:s|ed|ing|ion)?\b"
    r"|\bclassif(?:y|ies|ied|ying|ication)\b"
    r"|\bcategori[sz](?:e|es|ed|ing|ation)\b"
    r"|\b(?:as|in|into|with|return|returns|output|outputs|respond|reply|emit|produce|only)"
    r"\s+(?:(?:a|an|the|valid|strict|pure|raw|minified|single|one)\s+){0,3}json\b"
    r"|\bjson\s+(?:object|array|list|schema|format|output|response|only)\b"
    r"|\bstructured\s+(?:output|data)\b"
    r"|\bnamed\s+entit(?:y|ies)\b"
    r"|\bfill\s+(?:in|out)\s+the\s+(?:fields|form|template)\b"
)
_WRITING = re.compile(
    r"\b(?:write|compose|draft|craft|tell|create|generate)\b[^.?!\n]{0,60}?"
    r"\b(?P<noun>story|stories|tale|poem|poems|poetry|essay|haiku|limerick|lyrics|song"
    r"|screenplay|script|novel|article|blog\s+post|speech|letter|email|toast|eulogy|slogan"
    r"|tagline)\b"
    r"|\bbrainstorm\w*\b"
    r"|\bcreative\s+writing\b"
    r"|\bonce\s+upon\s+a\s+time\b"
)
# Words one of which each pattern needs: most prompts are ruled out by these plain
# substring look-ups, far cheaper than the patterns (which run on lower-cased text:
# case-insensitive matching is several times slower).
_EXTRACTION_STEMS = ("extract", "classif", "categori", "json", "structured", "named", "fill")
_WRITING_STEMS = (
    "write",
    "compose",
    "draft",
    "craft",
    "tell",
    "create",
    "generate",
    "brainstorm",
    "creative",
    "once",
)
_STRUCTURED_PREFILL = ("{", "[", "```json")
# A writing noun with one of these just before or after it is code ("a Python script",
# "a bash script", "an email validation regex"), which is ``other``.
_CODE_WORDS = frozenset(
    {
        *("python", "python3", "bash", "shell", "sh", "zsh", "powershell", "javascript"),
        *("typescript", "js", "node", "ruby", "perl", "php", "sql", "lua", "java", "kotlin"),
        *("golang", "rust", "c++", "applescript", "vba", "cron", "regex", "regexp"),
        *("regular", "validation", "validator", "parser", "parsing", "scraper", "function"),
        *("code", "program", "unit", "test", "tests", "automation", "html", "css", "yaml"),
        *("json", "xml"),
    }
)
# Words that, just before an extraction word, say the opposite ("do not return JSON").
_NEGATIONS = frozenset({"not", "no", "never", "without", "avoid", "don't", "dont", "nor"})
_CLAUSE_END = re.compile(r"[.?!;:,\n]")
_WORD_EDGES = "\"'`()[]{}*_"


def detect_task(body: Mapping[str, Any]) -> Task:
    """The task of a Messages body (see the module docstring for the rules)."""
    if _has_output_format(body) or _forces_tool(body) or _structured_prefill(body):
        return "extraction"
    return task_of_text(_text_of(body.get("system")), last_turn_text(body.get("messages")))


def task_of_text(*texts: str) -> Task:
    """The task the words of ``texts`` (instructions) suggest."""
    edges = [_edges(text).lower() for text in texts if text]
    if any(_found(text, _EXTRACTION_STEMS, _EXTRACTION, _asked) for text in edges):
        return "extraction"
    if any(_found(text, _WRITING_STEMS, _WRITING, _prose) for text in edges):
        return "writing"
    return "other"


def _found(
    text: str,
    stems: tuple[str, ...],
    pattern: re.Pattern[str],
    counts: Callable[[str, re.Match[str]], bool],
) -> bool:
    return any(stem in text for stem in stems) and any(
        counts(text, match) for match in pattern.finditer(text)
    )


def _words(text: str) -> list[str]:
    return [word.strip(_WORD_EDGES) for word in text.split()]


def _asked(text: str, match: re.Match[str]) -> bool:
    """An extraction word not negated by the two words before it, in its clause."""
    before = _CLAUSE_END.split(text[max(0, match.start() - 40) : match.start()])[-1]
    return not any(word in _NEGATIONS or word.endswith("n't") for word in _words(before)[-2:])


def _prose(text: str, match: re.Match[str]) -> bool:
    """A thing to write that is no code: no code word just before its noun or just
    after it ("a Python script", "an email validation regex")."""
    if match.group("noun") is None:  # brainstorm, creative writing...
        return True
    before = _words(text[max(0, match.start("noun") - 30) : match.start("noun")])[-1:]
    after = _CLAUSE_END.split(text[match.end("noun") : match.end("noun") + 40])[0]
    return _CODE_WORDS.isdisjoint([*before, *_words(after)[:1]])


def user_turns(messages: Any) -> int:
    """How many turns ``messages`` holds (see the module docstring)."""
    if not isinstance(messages, list):
        return 0
    turns = 0
    previous_user = False
    for message in messages:
        role = message.get("role") if isinstance(message, dict) else None
        if role == "user" and not previous_user and not _answers_tools(message):
            turns += 1
        previous_user = role == "user"
    return turns


def last_turn_text(messages: Any) -> str:
    """The text of the user message that starts the last turn ('' when none)."""
    if not isinstance(messages, list):
        return ""
    for index in range(len(messages) - 1, -1, -1):
        message = messages[index]
        if not isinstance(message, dict) or message.get("role") != "user":
            continue
        if _answers_tools(message):
            continue
        if index > 0 and _role(messages[index - 1]) == "user":
            continue  # a turn's later part; its start comes before
        return _text_of(message.get("content"))
    return ""


def _has_output_format(body: Mapping[str, Any]) -> bool:
    config = body.get("output_config")
    if isinstance(config, dict) and isinstance(config.get("format"), dict):
        return True
    return isinstance(body.get("output_format"), dict)


def _forces_tool(body: Mapping[str, Any]) -> bool:
    choice = body.get("tool_choice")
    tools = body.get("tools")
    return (
        isinstance(choice, dict)
        and choice.get("type") in ("any", "tool")
        and isinstance(tools, list)
        and bool(tools)
    )


def _structured_prefill(body: Mapping[str, Any]) -> bool:
    messages = body.get("messages")
    if not isinstance(messages, list) or not messages:
        return False
    last = messages[-1]
    if _role(last) != "assistant":
        return False
    prefill = _text_of(last.get("content")).lstrip()
    return prefill.startswith(_STRUCTURED_PREFILL)


def _role(message: Any) -> Any:
    return message.get("role") if isinstance(message, dict) else None


def _answers_tools(message: Mapping[str, Any]) -> bool:
    content = message.get("content")
    return isinstance(content, list) and any(
        isinstance(block, dict) and block.get("type") == "tool_result" for block in content
    )


def _text_of(content: Any) -> str:
    """The text of a string or of a list of blocks (text blocks only)."""
    if isinstance(content, str):
        return content
    if not isinstance(content, Sequence):
        return ""
    return "\n".join(
        block["text"]
        for block in content
        if isinstance(block, dict)
        and block.get("type") == "text"
        and isinstance(block.get("text"), str)
    )


def _edges(text: str) -> str:
    if len(text) <= 2 * _EDGE:
        return text
    return text[:_EDGE] + "\n" + text[-_EDGE:]
