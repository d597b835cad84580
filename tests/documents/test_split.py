"""The splitter on long mixed Chinese/English text: budget, coverage, order, boundaries."""

from __future__ import annotations

import itertools
import random

import pytest

from claude_proxy.documents import split_document
from claude_proxy.sim.bpe import text_tokens
from claude_proxy.tokens import estimate_text_tokens

ENGLISH = (
    "The gateway splits long documents at the most natural boundary it can find. "
    "Headings come first, then paragraphs, then sentences, then words. "
)
CHINESE = "网关会在最自然的边界处切分长文档。先是标题，然后是段落，再是句子！真的吗？是的。"


def mixed_document(size: int, seed: int = 7) -> str:
    """Headings, paragraphs, English and Chinese sentences, emoji (astral code points)."""
    rng = random.Random(seed)
    parts: list[str] = []
    length = 0
    section = 0
    while length < size:
        if rng.random() < 0.05:
            section += 1
            piece = f"\n\n## 第{section}节 Section {section}\n\n"
        elif rng.random() < 0.2:
            piece = "\n\n"
        elif rng.random() < 0.5:
            piece = CHINESE[rng.randrange(0, 20) :] + ("😀" if rng.random() < 0.1 else "")
        else:
            piece = ENGLISH[rng.randrange(0, 40) :]
        parts.append(piece)
        length += len(piece)
    return "".join(parts)[:size]


@pytest.fixture(scope="module")
def million() -> str:
    return mixed_document(1_000_000)


def test_a_million_characters_in_chunks_within_budget_covering_everything(million: str) -> None:
    chunks = split_document(million, 2000, 100)
    assert len(chunks) > 100
    assert chunks[0].start == 0 and chunks[-1].end == len(million)
    for index, (chunk, following) in enumerate(itertools.pairwise(chunks)):
        assert chunk.index == index
        assert million[chunk.start : chunk.end] == chunk.text
        assert following.start <= chunk.end  # no gap: every character is in a chunk
        assert following.start > chunk.start  # in order
    for chunk in chunks:
        assert estimate_text_tokens(chunk.text) <= 2000
        # Within budget for a real tokenizer too (the simulator's), since the estimate errs high.
        assert text_tokens(chunk.text) <= 2000


def test_without_overlap_the_chunks_are_the_document(million: str) -> None:
    chunks = split_document(million[:200_000], 1500, 0)
    assert "".join(chunk.text for chunk in chunks) == million[:200_000]


def test_cuts_fall_on_boundaries_not_inside_words_or_sentences(million: str) -> None:
    chunks = split_document(million[:300_000], 1000, 0)
    ends = [chunk.text[-1] for chunk in chunks[:-1]]
    # Every cut is after a sentence end, a newline or a space: never inside a word.
    assert all(end in "。！？.!? \n😀" for end in ends), set(ends)


def test_headings_start_chunks() -> None:
    document = "".join(f"## Part {n}\n\n" + ENGLISH * 12 + "\n\n" for n in range(10))
    chunks = split_document(document, 400, 0)
    assert sum(chunk.text.startswith("## Part") for chunk in chunks) >= 9


def test_deterministic(million: str) -> None:
    assert split_document(million[:100_000], 800, 50) == split_document(million[:100_000], 800, 50)


def test_overlap_repeats_the_end_of_the_previous_chunk(million: str) -> None:
    chunks = split_document(million[:100_000], 800, 100)
    shared = [a.end - b.start for a, b in itertools.pairwise(chunks)]
    assert max(shared) > 0
    assert all(n >= 0 for n in shared)


def test_mixed_density_keeps_the_overlap_asked_for_and_the_order() -> None:
    document = ENGLISH * 700 + CHINESE * 1500 + ENGLISH * 700
    chunks = split_document(document, 1000, 200)
    for chunk, following in itertools.pairwise(chunks):
        assert chunk.start < following.start and chunk.end < following.end  # none inside
        shared = document[following.start : chunk.end] if following.start < chunk.end else ""
        assert estimate_text_tokens(shared) <= 200 + 5
    assert all(estimate_text_tokens(chunk.text) <= 1000 for chunk in chunks)
