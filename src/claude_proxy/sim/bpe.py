"""A deterministic BPE-like tokenizer: where a text splits into tokens, and how many.

Real Claude/GPT-4 tokenizers are byte-level BPE run over a regex pre-tokenisation. This one
keeps a cl100k-style pre-tokenisation and replaces the learned merges with fixed rules, so
that counts behave like the real API's (long words are several tokens, punctuation is its
own, CJK is dear) and no word- or character-based estimate can match them by construction.
The simulator's own prose costs about 1.7 tokens a word, punctuation included.

Pre-tokens, tried in this order; an optional single leading space joins the first token of
every kind except contractions and whitespace:

================================  ==========================================================
pre-token                         tokens
================================  ==========================================================
contraction 's 't 'd 'm 'll 're   1
Latin word (ASCII and accented    1 if it has <= 3 letters or is in ``COMMON_WORDS`` (any
letters)                          case of it that is lower or Title case); otherwise chunks
                                  (below). camelCase / PascalCase: the lower-case chunks.
                                  ALL-CAPS, other mixed case: chunks of 2 letters.
ASCII digits                      groups of at most 3 from the left ("2026" = "202" "6")
CJK, kana, Hangul, CJK and        1 per character; a fixed 25 % of Han characters (CRC32 of
full-width punctuation            their UTF-8) cost 2: ``[char, ""]``
outside the BMP (emoji), also a   3 per character: ``[char, "", ""]``
surrogate pair held as two
code points
other letters (Cyrillic, Greek,   1 per 2 characters
Arabic, other Unicode digits...)
punctuation, symbols, ``_``       1 per character
whitespace run                    1 per 4 characters ("\\n\\n" is one token); a plain space
                                  right before a non-space is left to the next pre-token
================================  ==========================================================

Chunks of a lower-case (or Title-case) word: from the left, the first takes 3-4 letters and
the others 2-4, picked by the CRC32 of the lower-cased letters up to 4 past the chunk's
start; a chunk never leaves a single letter behind, and a 4-letter rest may stay whole.
Because a chunk depends only on letters it could cover, a word cut at a chunk boundary
never costs more than the chunks before the cut, so text cut at a token boundary never
retokenises to more tokens. Title case costs what lower case costs (sentence-initial capitals
are common in training text); other casing costs at least as much as lower case, never
less.

Tokens after the first of a multi-token character are empty strings, so the tokens always
concatenate to the text and no character (or surrogate pair) is ever split; ``truncate``
drops a character whose tokens a cut separates, as the API never sends half a character.
"""

from __future__ import annotations

import re
import zlib
from functools import lru_cache

__all__ = ["COMMON_WORDS", "text_tokens", "tokenize", "truncate"]

_COMMON_TEXT = """
about after again against also always another around back because been before being between
both came come could days does down during each even every first from give going good great
have hello here high however into just know large last later like little long look made make
many might more most much must never next number often only other over part people place
right said same should show since small some something still such take than that their them
then there these they thing think this those three through time under until upon used very
want water well were what when where which while will with within without work world would
write year your
"""
COMMON_WORDS = frozenset(_COMMON_TEXT.split())

_LATIN = "A-Za-z\u00c0-\u00d6\u00d8-\u00f6\u00f8-\u024f\u1e00-\u1eff"
_CJK = (
    "\u1100-\u11ff\u2e80-\u2fdf\u3001-\u9fff\ua960-\ua97f\uac00-\ud7ff"
    "\uf900-\ufaff\ufe30-\ufe4f\uff00-\uffef"
)
_ASTRAL = "\U00010000-\U0010ffff"
_PAIR = "[\ud800-\udbff][\udc00-\udfff]"
_PRETOKEN = re.compile(
    "|".join(
        (
            rf"('(?i:[sdmt]|ll|re|ve)(?![{_LATIN}]))",
            rf"( ?[{_LATIN}]+)",
            r"( ?[0-9]+)",
            rf"( ?[{_CJK}]+)",
            rf"( ?(?:[{_ASTRAL}]|{_PAIR})+)",
            rf"( ?[^\W0-9_{_LATIN}{_CJK}{_ASTRAL}]+)",
            rf"( ?(?:[^\w\s{_CJK}{_ASTRAL}\ud800-\udfff]|_)+)",
            r"( ?\S)",  # what is left: a lone surrogate
            r"(\s+?(?= ?\S|\Z))",
        )
    )
)
_CONTRACTION, _WORD, _DIGITS, _CJK_RUN, _ASTRAL_RUN, _OTHER, _PUNCT, _LONE, _SPACE = range(1, 10)
_ASTRAL_UNIT = re.compile(rf"{_PAIR}|.", re.DOTALL)
_ADJACENT_CAPITALS = re.compile("[A-Z\u00c0-\u00de]{2}")
_HAN = re.compile("[\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff]")

# Chunk sizes indexed by 3 CRC bits: the first chunk of a word, then the ones after it.
_FIRST = (3, 3, 4, 4, 4, 4, 4, 4)
_NEXT = (2, 3, 3, 3, 4, 4, 4, 4)
_SHORT_TEXT = 1024  # texts up to this length are cached whole


def tokenize(text: str) -> list[str]:
    """The tokens of ``text``; ``"".join(tokenize(text)) == text``."""
    if len(text) <= _SHORT_TEXT:
        return list(_tokenize_short(text))
    return _tokenize(text)


def text_tokens(text: str) -> int:
    """``len(tokenize(text))``, without building the token strings."""
    if len(text) <= _SHORT_TEXT:
        return _count_short(text)
    return _count(text)


def truncate(tokens: list[str], count: int) -> list[str]:
    """The first ``count`` tokens, minus a character whose tokens the cut separates.

    The dropped character's kept tokens still count: they were generated, not sent.
    """
    kept = tokens[:count]
    if 0 < count < len(tokens) and tokens[count] == "":
        head = count - 1
        while head > 0 and kept[head] == "":
            head -= 1
        unit = kept[head]
        cut = 2 if len(unit) >= 2 and "\udc00" <= unit[-1] <= "\udfff" else 1
        kept[head] = unit[:-cut]
    return kept


@lru_cache(maxsize=4096)
def _tokenize_short(text: str) -> tuple[str, ...]:
    return tuple(_tokenize(text))


@lru_cache(maxsize=4096)
def _count_short(text: str) -> int:
    return _count(text)


def _count(text: str) -> int:
    total = 0
    for match in _PRETOKEN.finditer(text):
        kind = match.lastindex
        piece = match.group()
        if kind == _WORD:
            total += len(_word_lengths(piece))
            continue
        if kind == _SPACE:
            total += (len(piece) + 3) // 4
            continue
        size = len(piece) - (piece[0] == " ")
        if kind == _PUNCT:
            total += size
        elif kind == _DIGITS:
            total += (size + 2) // 3
        elif kind == _OTHER:
            total += (size + 1) // 2
        elif kind == _CJK_RUN:
            total += size + _doubles(piece)
        elif kind == _ASTRAL_RUN:
            total += 3 * len(_ASTRAL_UNIT.findall(piece, piece[0] == " "))
        else:
            total += 1
    return total


def _tokenize(text: str) -> list[str]:
    out: list[str] = []
    for match in _PRETOKEN.finditer(text):
        kind = match.lastindex
        piece = match.group()
        if kind == _WORD:
            start = 0
            for size in _word_lengths(piece):
                out.append(piece[start : start + size])
                start += size
        elif kind == _SPACE:
            out.extend(piece[i : i + 4] for i in range(0, len(piece), 4))
        elif kind == _PUNCT:
            _fixed(out, piece, 1)
        elif kind == _DIGITS:
            _fixed(out, piece, 3)
        elif kind == _OTHER:
            _fixed(out, piece, 2)
        elif kind == _CJK_RUN:
            lead = " " if piece[0] == " " else ""
            for char in piece[len(lead) :]:
                out.append(lead + char)
                lead = ""
                if _HAN.match(char) and _costs_two(char):
                    out.append("")
        elif kind == _ASTRAL_RUN:
            lead = " " if piece[0] == " " else ""
            for unit in _ASTRAL_UNIT.findall(piece, len(lead)):
                out.extend((lead + unit, "", ""))
                lead = ""
        else:
            out.append(piece)
    return out


def _fixed(out: list[str], piece: str, size: int) -> None:
    """Chunks of ``size`` characters from the left; a leading space joins the first."""
    first = size + (piece[0] == " ")
    out.append(piece[:first])
    out.extend(piece[i : i + size] for i in range(first, len(piece), size))


def _doubles(run: str) -> int:
    return sum(1 for char in _HAN.findall(run) if _costs_two(char))


@lru_cache(maxsize=1 << 15)
def _costs_two(char: str) -> bool:
    # A hash of the character, never Python's per-process randomised hash().
    return zlib.crc32(char.encode()) % 4 == 0


@lru_cache(maxsize=1 << 16)
def _word_lengths(word: str) -> tuple[int, ...]:
    """Token lengths of one Latin pre-token; a leading space counts in the first."""
    lead = 1 if word[0] == " " else 0
    letters = word[lead:]
    size = len(letters)
    if size <= 3:
        return (len(word),)
    first, rest = letters[0], letters[1:]
    lower = letters.lower()
    if rest.islower() and (first.islower() or first.isupper()):
        if lower in COMMON_WORDS:
            return (len(word),)
        lengths = _chunks(lower if len(lower) == size else letters)
    elif len(lower) == size and not _ADJACENT_CAPITALS.search(letters):
        # camelCase and PascalCase identifiers cost what the lower-case word costs (BPE
        # learns them from code); a prefix cut at a chunk keeps that rule, so a cut never
        # costs more.
        lengths = _chunks(lower)
    else:
        # Rare casings are cut finer, so they can never be cheaper than lower case.
        lengths = [2] * (size // 2) + [1] * (size % 2)
    lengths[0] += lead
    return tuple(lengths)


def _chunks(letters: str) -> list[int]:
    size = len(letters)
    lengths: list[int] = []
    start = 0
    while (rest := size - start) > 3:
        bits = zlib.crc32(letters[: start + 4].encode()) & 7
        chunk = (_FIRST if start == 0 else _NEXT)[bits]
        # Never leave a single letter behind: a 4-letter rest stays whole or halves.
        chunk = min(chunk, rest - 2) if rest > 4 else (4 if chunk == 4 else 2)
        lengths.append(chunk)
        start += chunk
    if start < size:
        lengths.append(size - start)
    return lengths
