"""Find sensitive values in text: candidates by pattern, kept only when validated.

Speed comes from looking only where a value can be. Ordinary prose is scanned a few
times by patterns that start with a literal or a digit (which the regex engine skips
to), never by one pattern per detector from every position:

- numbers (cards, SSNs, Chinese IDs, phones, IPv4): one pass finds runs of digits and
  separators at least 7 characters long; each detector's pattern then runs inside a
  run only, with the text around it for context;
- emails and IPv6 addresses start from an ``@`` or a ``:x:`` seed and grow outwards;
- secrets are looked for only when one of their fixed prefixes occurs at all;
- IBANs (every one holds a run of digits) around those same runs.

Boundaries are explicit ASCII look-arounds, not ``\\b``: Python's ``\\b`` sees no
boundary between a Chinese character and a digit, so ``卡号4111…`` would be missed.

Context words tip the balance where a shape is ambiguous: a Luhn-valid number after
"order", "tracking" or "订单号" is an order number, unless a card word is near too; a
bare nine-digit number is an SSN only next to "SSN" or "social security"; a dotted quad
after "version" or "版本" is a version.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass

from claude_proxy.pii import validators as check

__all__ = ["ENTITIES", "CustomPattern", "Detector", "Finding"]

ENTITIES = (
    "CREDIT_CARD",
    "US_SSN",
    "EMAIL",
    "PHONE",
    "CN_ID",
    "IBAN",
    "IP_ADDRESS",
    "SECRET",
)


@dataclass(frozen=True, slots=True)
class Finding:
    entity: str
    start: int
    end: int


@dataclass(frozen=True, slots=True)
class CustomPattern:
    """A tenant's own entity: every match of ``pattern`` (group 1 when it has one)."""

    entity: str
    pattern: re.Pattern[str]


# Not preceded / followed by an ASCII letter or digit.
_B = r"(?<![0-9A-Za-z])"
_A = r"(?![0-9A-Za-z])"

_NUMERIC_RUN = re.compile(r"[0-9][0-9 \-.()/]{6,}")
# Every value the number detectors find holds four digits or dots in a row (a card's
# group, an SSN's serial, an IPv4 address) or two groups of two ("+33 6 81 06 75 09"):
# text.translate and str.find (memchr speed) skip to those, where a regex search would
# test every character.
_DIGITS_AND_DOTS = str.maketrans({**dict.fromkeys("0123456789.", "0"), " ": "_", "-": "_"})
_RUN_CHARS = frozenset("0123456789 -.()/")
_NOT_DIGITS = str.maketrans(dict.fromkeys(" -.()/"))

_CARD = re.compile(_B + r"[0-9](?:[ \-]?[0-9]){11,18}" + _A)
_SSN = re.compile(r"(?<![0-9A-Za-z\-])[0-9]{3}([ \-])[0-9]{2}\1[0-9]{4}(?![0-9A-Za-z\-])")
_NINE_DIGITS = re.compile(_B + r"[0-9]{9}" + _A)
_CN_ID = re.compile(_B + r"[0-9]{17}[0-9Xx]" + _A)
_PHONE_INTL = re.compile(r"(?<![0-9A-Za-z+])\+[0-9]{1,3}(?:[ \-.]?\(?[0-9]{1,4}\)?){2,5}" + _A)
_PHONE_US = re.compile(_B + r"(?:\([0-9]{3}\) ?|[0-9]{3}[\-. ])[0-9]{3}[\-. ][0-9]{4}" + _A)
_PHONE_CN = re.compile(_B + r"1[3-9][0-9](?:[ \-]?[0-9]{4}){2}" + _A)
_IPV4 = re.compile(r"(?<![0-9A-Za-z.])(?:[0-9]{1,3}\.){3}[0-9]{1,3}(?![0-9A-Za-z]|\.[0-9])")
_IBAN = re.compile(_B + r"[A-Z]{2}[0-9]{2}(?: ?[A-Z0-9]{4}){2,7}(?: ?[A-Z0-9]{1,4})?" + _A)

_EMAIL_LOCAL = re.compile(r"[A-Za-z0-9._%+\-]{1,64}\Z")
_EMAIL_DOMAIN = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9\-]{0,61}[A-Za-z0-9])?(?:\.[A-Za-z0-9\-]{1,63})*\.[A-Za-z]{2,24}" + _A
)
_LOCAL_CHARS = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_%+-")
_IPV6_SEED = re.compile(r":[0-9A-Fa-f]{0,4}:")
_IPV6_CHARS = re.compile(r"[0-9A-Fa-f:.]{2,45}")

# Secrets: (substrings one of which every match contains, the pattern; group 1 when
# only part of the match is the secret). A pattern runs only when a substring occurs.
_KEY = r"[A-Za-z0-9_\-]"
_SECRETS: tuple[tuple[tuple[str, ...], re.Pattern[str]], ...] = (
    (("sk-ant-",), re.compile(r"sk-ant-" + _KEY + "{20,}")),
    # OpenAI's: at least one digit, so that words like "sk-learn-compatible" are not keys.
    (("sk-",), re.compile(f"sk-(?<!{_KEY}sk-)(?!ant-)(?={_KEY}*[0-9]){_KEY}{{20,}}")),
    (
        ("A",),  # the pattern starts with the literal A: the regex engine skips to each
        re.compile(r"A(?<![A-Z0-9]A)(?:KIA|SIA|BIA|CCA)[A-Z0-9]{16}(?![A-Z0-9])"),
    ),
    (
        ("ecret_access_key", "ECRET_ACCESS_KEY", "aws_secret", "AWS_SECRET"),
        re.compile(
            r"(?i:aws_secret_access_key|secret_access_key|aws_secret)[\"']?\s*[:=]\s*[\"']?"
            r"([A-Za-z0-9/+=]{40})(?![A-Za-z0-9/+=])"
        ),
    ),
    (
        ("ghp_", "gho_", "ghu_", "ghs_", "ghr_", "github_pat_"),
        re.compile(r"g(?<![A-Za-z0-9_]g)(?:h[pousr]_[A-Za-z0-9]{36,255}|ithub_pat_\w{22,255})"),
    ),
    (("xox",), re.compile(r"xox(?<![A-Za-z0-9]xox)[abposr]-[A-Za-z0-9\-]{10,}")),
    # A token has a digit: "the bearer responsibilities" is prose.
    (
        ("earer", "EARER"),
        re.compile(
            r"(?:Bearer|bearer|BEARER)\s+((?=[A-Za-z\-._~+/]*[0-9])[A-Za-z0-9\-._~+/]{16,}=*)"
        ),
    ),
)
_PEM_BEGIN = re.compile(r"-----BEGIN[A-Z0-9 ]{0,40}PRIVATE KEY-----")
_PEM_END = re.compile(r"-----END[A-Z0-9 ]{0,40}PRIVATE KEY-----")
_PEM_BODY = re.compile(r"[A-Za-z0-9+/=\s:,\-]*")

_CONTEXT_SPAN = 32
_CARD_WORDS = re.compile(
    r"card|credit|debit|visa|master|amex|discover|unionpay|jcb|diners|cvv|expir|"
    r"卡号|信用卡|银行卡|借记卡|储蓄卡|银联|付款|支付",
    re.IGNORECASE,
)
_NOT_CARD_WORDS = re.compile(
    r"order|tracking|invoice|ref\b|reference|sku|isbn|serial|account no|po\b|"
    r"订单|单号|快递|发票|运单|物流|编号|流水号|票号",
    re.IGNORECASE,
)
_SSN_WORDS = re.compile(r"ssn|social security|社会安全|社保号", re.IGNORECASE)
_VERSION_WORDS = re.compile(
    r"(?:version|ver\.?|release|build|firmware|fw|kernel|sdk|v|版本|版本号|固件)"
    r"[ \t]*[:：]?[ \t]*\Z"
    r"|[=<>~!]=[ \t]*\Z",  # foo==1.2.3.4, bar>=2.0.0.1
    re.IGNORECASE,
)


class Detector:
    """The detectors of a set of entity types (and custom patterns), ready to scan."""

    def __init__(self, entities: Iterable[str], custom: Sequence[CustomPattern] = ()) -> None:
        wanted = frozenset(entities)
        unknown = wanted - set(ENTITIES)
        if unknown:
            raise ValueError(f"unknown entity types: {', '.join(sorted(unknown))}")
        self.entities = wanted
        self.custom = tuple(custom)
        self._phones = check.PhoneRanges()
        self._numeric = wanted & {"CREDIT_CARD", "US_SSN", "CN_ID", "PHONE", "IP_ADDRESS", "IBAN"}

    def find(self, text: str) -> list[Finding]:
        """Every finding in ``text``, in order and without overlaps (the longest wins)."""
        found: list[Finding] = []
        wanted = self.entities
        if self._numeric:
            self._numbers(text, found)
        if "EMAIL" in wanted and "@" in text:
            _emails(text, found)
        if "IP_ADDRESS" in wanted and ":" in text:
            _ipv6(text, found)
        if "SECRET" in wanted:
            _secrets(text, found)
        for custom in self.custom:
            for match in custom.pattern.finditer(text):
                group = 1 if custom.pattern.groups else 0
                if match.end(group) > match.start(group):
                    found.append(Finding(custom.entity, match.start(group), match.end(group)))
        return _without_overlaps(found) if len(found) > 1 else found

    def _numbers(self, text: str, found: list[Finding]) -> None:
        wanted = self._numeric
        iban_end = 0
        tables = _Tables()
        for run in _numeric_runs(text):
            # The run's own span, with one character more each side for the look-arounds
            # (a Chinese ID's final X, a phone's leading + or parenthesis).
            start = max(run.start() - 1, 0)
            end = min(run.end() + 1, len(text))
            # How many digits the run holds rules most detectors out at once.
            digits = len(run.group().translate(_NOT_DIGITS))
            if digits >= 12 and "CREDIT_CARD" in wanted:
                for match in _CARD.finditer(text, start, end):
                    if _groups_around(text, match.start(), match.end()) < 2:
                        _card(text, match.start(), match.group(), found, tables)
            if digits >= 17 and "CN_ID" in wanted:
                for match in _CN_ID.finditer(text, start, end):
                    if check.is_cn_id(match.group()):
                        found.append(Finding("CN_ID", match.start(), match.end()))
            if digits >= 9 and "US_SSN" in wanted:
                for match in _SSN.finditer(text, start, end):
                    if check.is_us_ssn(check.compact(match.group())):
                        found.append(Finding("US_SSN", match.start(), match.end()))
                for match in _NINE_DIGITS.finditer(text, start, end):
                    if check.is_us_ssn(match.group()) and _near(text, match.start(), _SSN_WORDS):
                        found.append(Finding("US_SSN", match.start(), match.end()))
            if digits >= 7 and "PHONE" in wanted:
                _phones(text, start, end, found, self._phones)
            if "IBAN" in wanted and run.start() >= iban_end:
                # Every IBAN holds a run of digits; it starts up to 34 characters before it
                # and may go on past it (letters, or a run broken by a letter group).
                window = max(run.start() - 36, iban_end)
                for match in _IBAN.finditer(text, window, min(run.end() + 48, len(text))):
                    if _iban(text, match.start(), match.end(), found):
                        iban_end = found[-1].end
            if "IP_ADDRESS" in wanted and "." in run.group():
                for match in _IPV4.finditer(text, start, end):
                    if check.is_ipv4(match.group()) and not _VERSION_WORDS.search(
                        text, max(match.start() - 12, 0), match.start()
                    ):
                        found.append(Finding("IP_ADDRESS", match.start(), match.end()))


def _near(text: str, start: int, words: re.Pattern[str]) -> bool:
    return words.search(text, max(start - _CONTEXT_SPAN, 0), start) is not None


class _Tables:
    """The header of the column a value sits in, for rows of CSV-like text (one scan).

    A row's context word is its column's name, lines above: "tracking_number" makes a
    Luhn-valid number in that column a tracking number. Headers found are remembered by
    row, so a table of many rows costs one step per row."""

    _DELIMITERS = (",", "\t", "|", ";")
    _MAX_LINES = 200
    _MAX_ROW = 2000
    _DIGITS = re.compile(r"[0-9]{3}")

    def __init__(self) -> None:
        self._by_row: dict[int, int | None] = {}  # row start -> its header line's start

    def header(self, text: str, start: int, end: int) -> str | None:
        """The column name of the value at ``start:end``, when it is a whole field of a
        delimited row of three fields or more."""
        row = text.rfind("\n", 0, start) + 1
        row_end = text.find("\n", end)
        if row_end < 0:
            row_end = len(text)
        if row_end - row > self._MAX_ROW:
            return None  # not a table row (minified JSON, say): not worth a copy per value
        line = text[row:row_end]
        delimiter = next((d for d in self._DELIMITERS if line.count(d) >= 2), None)
        if delimiter is None:
            return None
        before = text[start - 1] if start > row else delimiter
        after = text[end] if end < len(text) and text[end] != "\n" else delimiter
        if not (_field_edge(before, delimiter) and _field_edge(after, delimiter)):
            return None  # inside a sentence that happens to hold commas
        header = self._header_line(text, row, line.count(delimiter), delimiter)
        if header is None:
            return None
        header_end = text.find("\n", header)
        names = text[header:header_end].split(delimiter)
        column = text.count(delimiter, row, start)
        return names[column] if column < len(names) else None

    def _header_line(self, text: str, row: int, fields: int, delimiter: str) -> int | None:
        visited = []
        found: int | None = None
        line_end = row - 1
        for _ in range(self._MAX_LINES):
            if line_end < 0:
                break
            start = text.rfind("\n", 0, line_end) + 1
            if start in self._by_row:
                found = self._by_row[start]
                break
            visited.append(start)
            line = text[start:line_end]
            if line.count(delimiter) < fields - 1 or not line:
                break  # above the table (a field may hold the delimiter: "12:00:01,768")
            if not self._DIGITS.search(line):
                found = start
                break
            line_end = start - 1
        for start in visited:
            self._by_row[start] = found
        self._by_row[row] = found
        return found


def _numeric_runs(text: str) -> Iterator[re.Match[str]]:
    """The runs of digits and separators, at least 7 characters long, that could hold a
    value: the only places a number detector can match."""
    if not text.isascii():
        # str.translate is fast on ASCII only; on other text the regex is faster.
        yield from _NUMERIC_RUN.finditer(text)
        return
    mapped = text.translate(_DIGITS_AND_DOTS)
    position = 0
    next_block = next_groups = 0
    while True:
        if 0 <= next_block < position:
            next_block = mapped.find("0000", position)
        if 0 <= next_groups < position:
            next_groups = mapped.find("00_00", position)
        hits = [hit for hit in (next_block, next_groups) if hit >= position]
        if not hits:
            return
        hit = min(hits)
        start = hit
        while start > position and text[start - 1] in _RUN_CHARS:
            start -= 1
        while start < hit and not text[start].isdigit():  # a run begins with a digit
            start += 1
        run = _NUMERIC_RUN.match(text, start)
        if run is None or run.end() <= hit:
            position = hit + 1
            continue
        yield run
        position = run.end()


def _field_edge(char: str, delimiter: str) -> bool:
    return char == delimiter or char in " \"'"


def _nearest(text: str, start: int, words: re.Pattern[str]) -> int:
    """Where the last of ``words`` within the context span before ``start`` ends (-1: none)."""
    end = -1
    for match in words.finditer(text, max(start - _CONTEXT_SPAN, 0), start):
        end = match.end()
    return end


def _groups_around(text: str, start: int, end: int) -> int:
    """Digit groups joined to ``text[start:end]`` by a single space or dash, either side:
    a card among two or more such numbers is a row of a table of numbers."""
    count = 0
    position = start
    while position >= 2 and text[position - 1] in " -" and text[position - 2].isdigit():
        position -= 1
        while position > 0 and text[position - 1].isdigit():
            position -= 1
        count += 1
    position = end
    while position + 1 < len(text) and text[position] in " -" and text[position + 1].isdigit():
        position += 1
        while position < len(text) and text[position].isdigit():
            position += 1
        count += 1
    return count


def _card(text: str, start: int, candidate: str, found: list[Finding], tables: _Tables) -> None:
    """The card in a run of digit groups: the whole run, or its first or last groups
    (a run may carry a neighbouring number along)."""
    groups = re.split(r"[ \-]", candidate)
    # The whole run, or all of it but one group at either end ("4111 1111 1111 1111
    # 2024"): a card among more numbers than that is a row of a table of numbers.
    spans = [(0, len(groups))]
    if len(groups) > 1:
        spans += [(0, len(groups) - 1), (1, len(groups))]
    offsets = [0]
    for group in groups:
        offsets.append(offsets[-1] + len(group) + 1)
    for first, last in spans:
        digits = "".join(groups[first:last])
        if not 12 <= len(digits) <= 19:
            continue
        part = groups[first:last]
        if len(part) > 1 and min(len(group) for group in part) < 3:
            continue  # groups of one or two digits: a list of numbers, not a card
        if check.card_issuer(digits) is None:
            continue
        begin = start + offsets[first]
        if _nearest(text, begin, _NOT_CARD_WORDS) > _nearest(text, begin, _CARD_WORDS):
            return  # "Order #4111…": an order number, unless a card word is nearer
        header = tables.header(text, begin, start + offsets[last] - 1)
        if header and _NOT_CARD_WORDS.search(header) and not _CARD_WORDS.search(header):
            return  # a "tracking_number" column of a CSV export
        found.append(Finding("CREDIT_CARD", begin, start + offsets[last] - 1))
        return


def _phones(
    text: str, start: int, end: int, found: list[Finding], ranges: check.PhoneRanges
) -> None:
    for match in _PHONE_INTL.finditer(text, start, end):
        value = match.group()
        # A run may carry a following number along: drop trailing groups until valid.
        while True:
            if ranges.valid(value, None):
                found.append(Finding("PHONE", match.start(), match.start() + len(value)))
                break
            cut = max(value.rfind(" "), value.rfind("-"), value.rfind("."))
            if cut <= 3:
                break
            value = value[:cut]
    for match in _PHONE_US.finditer(text, start, end):
        if ranges.valid(match.group(), "US"):
            found.append(Finding("PHONE", match.start(), match.end()))
    for match in _PHONE_CN.finditer(text, start, end):
        if ranges.valid(match.group(), "CN"):
            found.append(Finding("PHONE", match.start(), match.end()))


def _iban(text: str, start: int, end: int, found: list[Finding]) -> bool:
    value = text[start:end]
    while len(value) >= 15:
        if check.is_iban(value.replace(" ", "")):
            found.append(Finding("IBAN", start, start + len(value)))
            return True
        cut = value.rfind(" ")
        if cut < 0:
            return False
        value = value[:cut]
    return False


def _emails(text: str, found: list[Finding]) -> None:
    at = text.find("@")
    while at >= 0:
        if at == 0 or text[at - 1] not in _LOCAL_CHARS:
            at = text.find("@", at + 1)
            continue
        local = _EMAIL_LOCAL.search(text, max(at - 64, 0), at)
        domain = _EMAIL_DOMAIN.match(text, at + 1)
        if local is not None and domain is not None:
            begin = local.start()
            # A local part starts and ends with a letter or digit (not "." or "-").
            while begin < at and text[begin] in ".-":
                begin += 1
            if begin < at and text[at - 1] != ".":
                found.append(Finding("EMAIL", begin, domain.end()))
                at = text.find("@", domain.end())
                continue
        at = text.find("@", at + 1)


def _ipv6(text: str, found: list[Finding]) -> None:
    position = 0
    while (seed := _IPV6_SEED.search(text, position)) is not None:
        begin = seed.start()
        floor = max(begin - 40, 0)
        while begin > floor and text[begin - 1] in "0123456789abcdefABCDEF:.":
            begin -= 1
        match = _IPV6_CHARS.match(text, begin)
        if match is None:
            position = seed.end()
            continue
        value = match.group().rstrip(".")
        before = text[begin - 1] if begin else " "
        after_index = begin + len(value)
        after = text[after_index] if after_index < len(text) else " "
        if (
            not (before.isascii() and before.isalnum())
            and not (after.isascii() and after.isalnum())
            and check.is_ipv6(value)
        ):
            found.append(Finding("IP_ADDRESS", begin, after_index))
        position = max(match.end(), seed.end())


def _secrets(text: str, found: list[Finding]) -> None:
    if "-----BEGIN" in text:
        _private_keys(text, found)
    underscore = "_" in text  # one memchr rules out the keys that hold an underscore
    for needles, pattern in _SECRETS:
        if not underscore and all("_" in needle for needle in needles):
            continue
        if not any(needle in text for needle in needles):
            continue
        group = 1 if pattern.groups else 0
        for match in pattern.finditer(text):
            found.append(Finding("SECRET", match.start(group), match.end(group)))


# When two findings cover the same characters, the longer wins (a key block holds
# numbers); of two as long, the more specific check: a Chinese ID's check character and
# birth date say more than a Luhn digit, which one number in ten passes.
_PRIORITY = {
    name: rank
    for rank, name in enumerate(
        ("SECRET", "CN_ID", "IBAN", "EMAIL", "CREDIT_CARD", "US_SSN", "PHONE", "IP_ADDRESS")
    )
}


def _rank(finding: Finding) -> tuple[int, int]:
    return (finding.end - finding.start, -_PRIORITY.get(finding.entity, len(_PRIORITY)))


def _private_keys(text: str, found: list[Finding]) -> None:
    """PEM private-key blocks; one cut before its END line is a secret all the same, to
    its last base64 character. Linear: each END is found once, not searched per BEGIN."""
    ends = [match.end() for match in _PEM_END.finditer(text)]
    position = 0
    for begin in _PEM_BEGIN.finditer(text):
        if begin.start() < position:
            continue
        index = bisect.bisect_left(ends, begin.end())
        if index < len(ends):
            position = ends[index]
        else:
            body = _PEM_BODY.match(text, begin.end())
            position = body.end() if body is not None else begin.end()
        found.append(Finding("SECRET", begin.start(), position))


def _without_overlaps(found: list[Finding]) -> list[Finding]:
    found.sort(key=lambda f: (f.start, f.start - f.end))
    kept: list[Finding] = []
    for finding in found:
        if kept and finding.start < kept[-1].end:
            if _rank(finding) > _rank(kept[-1]):
                kept[-1] = finding
            continue
        kept.append(finding)
    return kept
