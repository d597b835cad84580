"""How far the gateway's token estimator is from the simulator's tokenizer, per script.

The estimator (``claude_proxy.tokens.estimate_text_tokens``) must err high: it bounds
the ``max_tokens`` a healed stream may still use. For each corpus this samples
fragments of 20 to 3,000 characters and reports the estimate over the true count
(median, lowest, and how often it was under), plus the estimator's speed.

    python benchmarks/estimate.py
"""

from __future__ import annotations

import random
import statistics
import time
from pathlib import Path

from claude_proxy.sim.bpe import text_tokens
from claude_proxy.sim.text import answer_pieces
from claude_proxy.tokens import estimate_text_tokens

ROOT = Path(__file__).resolve().parent.parent
SAMPLES = 3000
LENGTHS = (20, 50, 100, 300, 1000, 3000)
# Written for this benchmark: plain modern Chinese with its own punctuation.
CHINESE = (
    "网关在生产环境中运行时，需要处理很长的文档、中途断开的流、重试和限流。"
    "我们的许多用户用中文写作，所以身份证号码、手机号码和银行卡号同样重要。"
    "当一个回答超过了最大输出长度时，网关会自动继续生成，直到回答完整为止；"
    "客户端看到的是一条完整的消息，而不是几段需要手工拼接的文字。"
    "如果上游连接在回答的中间断开，网关会从客户端已经收到的文字继续，"
    "并且保证不重复、不遗漏，也不会超过请求中规定的最大令牌数！"
    "这段文字用于测量估算器在中文文本上的误差：它应当略高于真实的令牌数，但不能高得太多？"
)


def corpora() -> dict[str, str]:
    prose = "".join("".join(answer_pieces(seed, 400)) + "\n\n" for seed in range(50))
    readme = (ROOT / "README.md").read_text()
    code = "".join(p.read_text() for p in sorted((ROOT / "src").rglob("*.py"))[:60])
    chinese = CHINESE * 20
    mixed = "".join(
        chinese[i : i + 30] + " " + prose[i * 3 : i * 3 + 60] for i in range(0, 900, 30)
    )
    return {
        "English prose (simulator)": prose,
        "English + Markdown (README)": readme,
        "Python code": code,
        "Chinese": chinese,
        "Chinese/English mixed": mixed,
    }


def measure(corpus: str, rng: random.Random) -> tuple[float, float, float, float]:
    ratios: list[float] = []
    under = 0
    for _ in range(SAMPLES):
        size = rng.choice(LENGTHS)
        start = rng.randrange(0, max(1, len(corpus) - size))
        fragment = corpus[start : start + size]
        true = text_tokens(fragment)
        if true == 0:
            continue
        estimate = estimate_text_tokens(fragment)
        ratios.append(estimate / true)
        under += estimate < true
    whole = estimate_text_tokens(corpus) / text_tokens(corpus)
    return whole, statistics.median(ratios), min(ratios), under / len(ratios)


def speed(corpus: str) -> float:
    text = (corpus * (1_000_000 // len(corpus) + 1))[:1_000_000]
    started = time.perf_counter()
    for _ in range(5):
        estimate_text_tokens(text)
    return 5 * len(text.encode()) / (time.perf_counter() - started) / 1e6


def main() -> None:
    rng = random.Random(1)
    print("# Token estimator against the simulator's tokenizer (estimate / true)\n")
    print("| text | chars/token (true) | whole text | median fragment | lowest | fragments under |")
    print("|---|---|---|---|---|---|")
    for name, corpus in corpora().items():
        whole, median, lowest, under = measure(corpus, rng)
        chars = len(corpus) / text_tokens(corpus)
        print(
            f"| {name} | {chars:.2f} | {whole:.2f}x | {median:.2f}x | {lowest:.2f}x | {under:.1%} |"
        )
    prose = corpora()["English prose (simulator)"]
    print(f"\nestimator speed on 1 MB of English prose: {speed(prose):.0f} MB/s")


if __name__ == "__main__":
    main()
