"""Deterministic text: seeded words sized in tokens, and the arithmetic of cutting them.

A *piece* is a word with its leading whitespace (``" word"``, ``"\\n\\nWord"``); the first
piece of an answer has none. Because whitespace always leads, cutting an answer anywhere and
stripping trailing whitespace leaves a prefix whose continuation starts with exactly the
stripped whitespace: ``prefix.rstrip() + rest == answer`` for every cut point.

Pieces are also token boundaries (no pre-token runs from a letter or punctuation mark into
the whitespace after it), so an answer's tokens are its pieces' tokens in a row; lengths
are counted with the simulator's tokenizer (``bpe``).
"""

from __future__ import annotations

import hashlib
import random

from claude_proxy.sim.bpe import text_tokens, tokenize

__all__ = [
    "answer_pieces",
    "natural_length",
    "prose_tokens",
    "seed_from",
    "split_after",
    "tail_words",
]

_WORD_TEXT = """the of and to in is that for it as with was on be by this are from at or an have
not which but all were when we there can more one has their if will each about how
up out them then she many some so these would other into time two could no way
people been water than first who its now find long down day did get come made may
part system model answer request stream token cache latency gateway server client
value result signal network simple careful quiet bright rapid steady clear gentle
river mountain garden window morning evening winter summer forest ocean harbor
bridge engine lantern compass journey question method pattern balance measure
design detail reason example moment number letter circle corner market village
travel follow gather listen consider explain improve return deliver prepare build
across between through around beneath beyond within without toward during often
always rarely quickly slowly almost nearly perhaps indeed further rather still"""
_WORDS: tuple[str, ...] = tuple(_WORD_TEXT.split())
_SENTENCE_END = (".", ".", ".", "!", "?")


def seed_from(*parts: bytes) -> int:
    """A stable 64-bit seed (hashlib, never Python's randomised hash())."""
    digest = hashlib.sha256()
    for part in parts:
        digest.update(len(part).to_bytes(8, "big"))
        digest.update(part)
    return int.from_bytes(digest.digest()[:8], "big")


def natural_length(seed: int, low: int, high: int) -> int:
    return random.Random(seed ^ 0x5EED).randint(low, high)


def answer_pieces(seed: int, tokens: int, *, lead: str = "") -> list[str]:
    """Prose of at least ``tokens`` tokens, ending on a whole word and its final ".".

    Words are added until the text costs ``tokens``; the word that reaches it ends the
    answer, so the cost is ``tokens`` to ``tokens`` + that word's cost (1-4 tokens with its
    whitespace). Piece i does not depend on ``tokens`` unless it is the last one.
    ``lead`` is the whitespace in front of the first piece (empty for a fresh answer).
    """
    rng = random.Random(seed)
    pieces: list[str] = []
    used = 0
    left_in_sentence = 0
    sentences_in_paragraph = 0
    space = lead
    while True:
        capital = left_in_sentence == 0
        if capital:
            left_in_sentence = rng.randint(5, 14)
        word = rng.choice(_WORDS)
        if capital:
            word = word.capitalize()
        cost = text_tokens(space + word)
        if used + cost + 1 >= tokens:  # + 1: the final "."
            pieces.append(space + word + ".")
            return pieces
        left_in_sentence -= 1
        mark = ""  # punctuation is one token of its own
        if left_in_sentence == 0:
            mark = rng.choice(_SENTENCE_END)
            sentences_in_paragraph += 1
        elif rng.random() < 0.08:
            mark = ","
        pieces.append(space + word + mark)
        used += cost + len(mark)
        if left_in_sentence == 0 and sentences_in_paragraph >= rng.randint(3, 5):
            sentences_in_paragraph = 0
            space = "\n\n"
        else:
            space = " "


def prose_tokens(seed: int, tokens: int, *, lead: str = "") -> list[str]:
    """The tokens of ``answer_pieces``, each piece tokenized alone (short, so cached)."""
    return [token for piece in answer_pieces(seed, tokens, lead=lead) for token in tokenize(piece)]


def split_after(pieces: list[str], consumed: int) -> list[str]:
    """The pieces left once the first ``consumed`` characters are taken.

    Works on pieces and on tokens alike: a token cut in the middle keeps its tail, which
    still counts as one token; empty tokens (the rest of a character) at the cut go with
    the character, so they are not counted twice.
    """
    position = 0
    for i, piece in enumerate(pieces):
        end = position + len(piece)
        if end > consumed:
            return [piece[consumed - position :], *pieces[i + 1 :]]
        position = end
    return []


def tail_words(text: str, count: int) -> list[str]:
    """The last ``count`` words of ``text`` as pieces (first without leading whitespace)."""
    if count <= 0:
        return []
    cut = len(text)
    for _ in range(count):
        stripped = text[:cut].rstrip()
        if not stripped:
            cut = 0
            break
        start = len(stripped)
        while start > 0 and not stripped[start - 1].isspace():
            start -= 1
        cut = start
    tail = text[cut:].lstrip()
    pieces: list[str] = []
    word_start = 0
    for i in range(1, len(tail) + 1):
        if i == len(tail) or (tail[i].isspace() and not tail[i - 1].isspace()):
            pieces.append(tail[word_start:i])
            word_start = i
    return [p for p in pieces if p]
