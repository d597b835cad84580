"""The BPE-like tokenizer: hand-checked splits, and properties over seeded mixed text."""

# The examples are non-Latin on purpose: full-width punctuation, Cyrillic, Greek.
# ruff: noqa: RUF001

from __future__ import annotations

import os
import random
import subprocess
import sys

import pytest

from claude_proxy.sim.bpe import COMMON_WORDS, text_tokens, tokenize, truncate
from claude_proxy.sim.text import answer_pieces


@pytest.mark.parametrize(
    ("text", "tokens"),
    [
        ("", []),
        ("the", ["the"]),
        (" the", [" the"]),
        ("The", ["The"]),
        (" cat", [" cat"]),  # <= 3 letters
        (" people which would", [" people", " which", " would"]),  # common words
        ("Hello, world!", ["Hello", ",", " world", "!"]),
        ("don't", ["don", "'t"]),
        ("I'll", ["I", "'ll"]),
        ("2026", ["202", "6"]),
        (" 1234567", [" 123", "456", "7"]),
        ("v2", ["v", "2"]),
        ("snake_case", ["sna", "ke", "_", "case"]),
        ("a...!", ["a", ".", ".", ".", "!"]),
        ("HELLO", ["HE", "LL", "O"]),  # all caps: 2 letters a token
        ("\n\n", ["\n\n"]),
        ("a\n\nThe", ["a", "\n\n", "The"]),
        ("a\n\n the", ["a", "\n\n", " the"]),
        (" " * 9 + "x", ["    ", "    ", " x"]),  # the last space joins the word
        ("x  ", ["x", "  "]),
        ("Привет мир", ["Пр", "ив", "ет", " ми", "р"]),  # other scripts: 2 characters
        ("Ελληνικά", ["Ελ", "λη", "νι", "κά"]),
        ("😀", ["😀", "", ""]),
        (" 😀!", [" 😀", "", "", "!"]),
        ("\ud83d\ude00x", ["\ud83d\ude00", "", "", "x"]),  # a pair held as two code points
        # 好 and 个 are 2-token characters: CRC32 of their UTF-8 is divisible by 4.
        ("你好，世界。", ["你", "好", "", "，", "世", "界", "。"]),
        ("这是一个测试", ["这", "是", "一", "个", "", "测", "试"]),
        ("ひらがな한국어", ["ひ", "ら", "が", "な", "한", "국", "어"]),  # kana, Hangul: 1
        ("a 好", ["a", " 好", ""]),
    ],
)
def test_hand_checked(text: str, tokens: list[str]) -> None:
    assert tokenize(text) == tokens
    assert text_tokens(text) == len(tokens)


def test_long_rare_word_is_several_chunks() -> None:
    tokens = tokenize(" internationalization")
    assert len(tokens) >= 5
    assert tokens[0].startswith(" ") and 2 <= len(tokens[0]) - 1 <= 4
    assert all(2 <= len(t) <= 4 for t in tokens[1:])
    assert "".join(tokens) == " internationalization"


def test_capitalisation_never_makes_a_word_cheaper() -> None:
    rng = random.Random(7)
    words = sorted(COMMON_WORDS) + [
        "".join(rng.choice("abcdefghijklmnopqrstuvwxyz") for _ in range(rng.randint(1, 16)))
        for _ in range(500)
    ]
    for word in words:
        lower = text_tokens(" " + word)
        assert text_tokens(" " + word.capitalize()) == lower, word
        assert text_tokens(" " + word.upper()) >= lower, word
        mixed = "".join(c.upper() if i % 3 == 1 else c for i, c in enumerate(word))
        assert text_tokens(" " + mixed) >= lower, word


def test_han_characters_cost_one_or_two() -> None:
    han = [chr(c) for c in range(0x4E00, 0xA000)]
    costs = [text_tokens(c) for c in han]
    assert set(costs) == {1, 2}
    assert 0.22 < costs.count(2) / len(costs) < 0.28
    assert all(tokenize(c) == [c, ""] for c, n in zip(han, costs, strict=True) if n == 2)
    kana_hangul_punct = "あいうアイウ가나다。，！？；：「」"
    assert [text_tokens(c) for c in kana_hangul_punct] == [1] * len(kana_hangul_punct)


def _mixed_text(rng: random.Random) -> str:
    """Words, digits, punctuation, whitespace, accents, CJK, Cyrillic and astral characters."""
    makers = [
        lambda: rng.choice(["the", "Word", "gateway", "internationalization", "HTTP", "café"]),
        lambda: str(rng.randint(0, 10**7)),
        lambda: rng.choice(",.;:!?()[]{}\"'_-/\\@#$%^&*"),
        lambda: rng.choice([" ", " ", " ", "\n", "\n\n", "\t", "     ", "\r\n", "\u3000"]),
        lambda: "".join(chr(rng.randint(0x4E00, 0x9FFF)) for _ in range(rng.randint(1, 5))),
        lambda: rng.choice("。，「」ひらカナ한국"),
        lambda: "".join(chr(rng.randint(0x0430, 0x044F)) for _ in range(rng.randint(1, 7))),
        lambda: chr(rng.choice([rng.randint(0x1F300, 0x1FAFF), rng.randint(0x20000, 0x2A6DF)])),
        lambda: "e\u0301",
    ]
    return "".join(rng.choice(makers)() for _ in range(rng.randint(0, 60)))


def test_properties_on_mixed_text() -> None:
    rng = random.Random(2026)
    for _ in range(400):
        text = _mixed_text(rng)
        tokens = tokenize(text)
        assert "".join(tokens) == text
        assert text_tokens(text) == len(tokens)
        for i, token in enumerate(tokens):
            if token == "":
                # The rest of a character: only after a Han or astral head.
                head = next(t for t in reversed(tokens[:i]) if t)
                assert "\u4e00" <= head[-1] <= "\u9fff" or head[-1] >= "\udc00", head
            else:
                assert not "\ud800" <= token[-1] <= "\udbff"  # no pair split across tokens
        for cut in range(len(tokens) + 1):
            kept = "".join(truncate(tokens, cut))
            assert text.startswith(kept)
            assert text_tokens(kept) <= cut, (text, cut)


def test_a_word_cut_at_a_chunk_never_costs_more() -> None:
    rng = random.Random(11)
    for _ in range(3000):
        word = "".join(rng.choice("abcdefghijklmnopqrstuvwxyzé") for _ in range(rng.randint(4, 24)))
        word = rng.choice([word, word.capitalize(), word.upper(), word.swapcase()])
        tokens = tokenize(" " + word)
        for cut in range(1, len(tokens)):
            assert text_tokens("".join(tokens[:cut])) <= cut


def test_truncate_drops_a_character_it_would_split() -> None:
    tokens = tokenize("a 好")  # ["a", " 好", ""]
    assert truncate(tokens, 3) == ["a", " 好", ""]
    assert truncate(tokens, 2) == ["a", " "]  # the kept token still counts
    emoji = tokenize("ok😀")  # ["ok", "😀", "", ""]
    assert truncate(emoji, 3) == ["ok", "", ""]
    assert truncate(emoji, 2) == ["ok", ""]
    pair = tokenize("\ud83d\ude00")
    assert truncate(pair, 1) == [""]
    assert truncate(tokenize("Hello, world!"), 2) == ["Hello", ","]


def test_simulator_prose_costs_about_1_7_tokens_a_word() -> None:
    tokens = words = 0
    for seed in range(100):
        text = "".join(answer_pieces(seed, 300))
        tokens += text_tokens(text)
        words += len(text.split())
    assert 1.5 <= tokens / words <= 1.8


def test_counts_do_not_depend_on_the_process_hash_seed() -> None:
    sample = "Hello, gateway! 你好 😀 Привет internationalization 12345"
    code = (
        "from claude_proxy.sim.bpe import tokenize;"
        f"print(tokenize({sample!r}) == {tokenize(sample)!r})"
    )
    env = {**os.environ, "PYTHONHASHSEED": "12345"}
    out = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    assert out.stdout.strip() == "True"
