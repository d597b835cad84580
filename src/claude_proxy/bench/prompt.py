"""The bench's requests: a long document of a chosen size, and questions that ask for long answers.

The document reads like an operations report (sections, incidents, figures, names), not
a repeated sentence, so that tokenizers count it as they would a real one. Its size is
measured with the gateway's own estimator (``tokens.estimate``), which errs high: the API
and the simulator count fewer tokens, and the bench reports what they counted (``usage``)
beside the size asked for.

The document goes in ``system``, the stable prefix of every request of a series, and
each run asks a different question in the user turn: a prompt cache can serve the
document from the second request on. Every request carries the bench run's nonce (the
document's label, or the short prompt's last words) and ``cache-control: no-store``: a
response cache never serves a whole answer, not even one from an earlier bench run.
"""

from __future__ import annotations

import random
import re
from typing import Any

from claude_proxy.tokens import estimate_input_tokens, estimate_text_tokens

__all__ = ["document", "long_answer_request", "question_request", "report_for"]

_SERVICES = (
    "payments API", "search indexer", "checkout service", "identity provider",
    "notification queue", "billing ledger", "inventory cache", "reporting warehouse",
    "mobile gateway", "fraud scorer", "document store", "recommendation engine",
)  # fmt: skip
_REGIONS = ("eu-west-1", "us-east-2", "ap-southeast-1", "eu-central-1", "us-west-2")
_TEAMS = ("platform", "storage", "networking", "payments", "data", "site reliability")
_CAUSES = (
    "a connection pool that was sized for last year's traffic",
    "a configuration change that disabled request coalescing",
    "a certificate that expired on one of the load balancers",
    "a slow query introduced by a schema migration",
    "garbage collection pauses after a memory limit was lowered",
    "a retry storm from clients that ignored the retry-after header",
    "a noisy neighbour on the shared database cluster",
    "disk pressure on the nodes that hold the write-ahead log",
)
_SENTENCES = (
    "Between {t1} and {t2} UTC the {svc} in {region} answered {pct}% of requests with errors.",
    "The on-call engineer from the {team} team was paged after {m} minutes, "
    "when the error budget alert fired.",
    "Median latency rose from {a} ms to {b} ms, and the 99th percentile passed {c} ms.",
    "The root cause was {cause}.",
    "Traffic was moved to {region2} while the fix was rolled out, which doubled the load there "
    "for about {m} minutes.",
    "Customers noticed: the support queue received {n} tickets about failed or slow requests.",
    "A rollback was considered but rejected, because the previous release carried a known "
    "data-loss bug.",
    "The dashboards showed the problem {m} minutes before the first alert, so the alert "
    "thresholds will be lowered.",
    "Capacity planning for the {svc} assumed {n} requests per second at peak; the real peak "
    "was {n2}.",
    "Follow-up: the {team} team will add a load test that reproduces the failure before "
    "every release.",
    "No data was lost, but {n} jobs had to be replayed from the queue by hand.",
    "The incident cost an estimated {cost} dollars in refunds and credits.",
    "Two similar incidents happened in the previous quarter, both in {region}.",
    "The runbook was out of date: step {k} referred to a dashboard that no longer exists.",
    "Recovery was confirmed when error rates stayed below {small}% for thirty minutes.",
    "Engineers noted that the {svc} has no circuit breaker in front of its database.",
)

_SENTENCE_END = re.compile(r"\.(\s|$)")


def document(tokens: int, label: str, seed: int = 17) -> str:
    """An operations report of about ``tokens`` estimated tokens (at least ``tokens``).

    ``label`` opens it (a run's nonce and the size), so that two series or two bench
    runs never share a cached prefix by accident.
    """
    rng = random.Random(f"{seed}:{tokens}")
    parts = [f"Quarterly operations review ({label})\n"]
    used = estimate_text_tokens(parts[0])
    number = 0
    while used < tokens:
        number += 1
        section = _section(rng, number)
        parts.append(section)
        used += estimate_text_tokens(section)
    return _trim("".join(parts), tokens)


def _section(rng: random.Random, number: int) -> str:
    svc = rng.choice(_SERVICES)
    region = rng.choice(_REGIONS)
    lines = [f"\n## Incident {number}: degraded {svc} in {region}\n"]
    for _ in range(rng.randint(2, 4)):
        chosen = rng.sample(_SENTENCES, rng.randint(3, 6))
        start = rng.randint(0, 20 * 60)
        end = start + rng.randint(10, 200)
        values = {
            "t1": f"{start // 60:02d}:{start % 60:02d}",
            "t2": f"{end // 60:02d}:{end % 60:02d}",
            "svc": svc,
            "region": region,
            "region2": rng.choice([r for r in _REGIONS if r != region]),
            "team": rng.choice(_TEAMS),
            "cause": rng.choice(_CAUSES),
            "pct": rng.randint(2, 40),
            "small": round(rng.uniform(0.1, 0.9), 1),
            "m": rng.randint(3, 90),
            "a": rng.randint(40, 200),
            "b": rng.randint(400, 3000),
            "c": rng.randint(3000, 20000),
            "n": rng.randint(10, 5000),
            "n2": rng.randint(5000, 40000),
            "k": rng.randint(2, 12),
            "cost": f"{rng.randint(1, 400) * 250:,}",
        }
        lines.append(" ".join(s.format(**values) for s in chosen) + "\n")
    return "\n".join(lines)


def _trim(text: str, tokens: int) -> str:
    """Cut the text back, at a sentence end, to the first point that reaches ``tokens``."""
    if estimate_text_tokens(text) <= tokens:
        return text
    low, high = 0, len(text)
    while low < high:  # the shortest prefix whose estimate reaches the target
        middle = (low + high) // 2
        if estimate_text_tokens(text[:middle]) >= tokens:
            high = middle
        else:
            low = middle + 1
    end = _SENTENCE_END.search(text, max(0, low - 1))
    return text if end is None else text[: end.start() + 1] + "\n"


def _words_for(max_tokens: int) -> int:
    # English runs at about 0.75 words a token: ask for more than fits, so that the
    # answer is cut at max_tokens rather than ending early.
    return max(50, round(max_tokens * 0.75 * 1.5 / 50) * 50)


def long_answer_request(model: str, max_tokens: int, run: int, nonce: str) -> dict[str, Any]:
    """A short prompt whose answer fills ``max_tokens`` (the design note's table);
    ``nonce``, the bench run's, makes it a request no earlier run sent."""
    topics = ("a city's water supply", "a train timetable", "a hospital's night shift",
              "a lighthouse keeper's year", "a bakery at dawn", "a container port")  # fmt: skip
    topic = topics[run % len(topics)]
    prompt = (
        f"Write a detailed essay of at least {_words_for(max_tokens)} words about how "
        f"{topic} works. Do not stop early; use several long paragraphs. "
        f"(Run {nonce}, request {run}.)"
    )
    return {
        "model": model,
        "max_tokens": max_tokens,
        "stream": True,
        "messages": [{"role": "user", "content": prompt}],
    }


def report_for(model: str, input_tokens: int, max_tokens: int, label: str) -> str:
    """The document that makes a ``question_request`` about ``input_tokens`` estimated
    tokens in all (question and framing included)."""
    framing = estimate_input_tokens(question_request(model, "", max_tokens, 0))
    return document(max(1, input_tokens - framing), label)


def question_request(model: str, report: str, max_tokens: int, run: int) -> dict[str, Any]:
    """A question about ``report`` (the system prompt), different for each ``run``."""
    prompt = (
        f"Question {run + 1}: go through incident {run + 1} and every incident like it in "
        "the review above, explain what went wrong and what should change, in at least "
        f"{_words_for(max_tokens)} words."
    )
    return {
        "model": model,
        "max_tokens": max_tokens,
        "stream": True,
        "system": report,
        "messages": [{"role": "user", "content": prompt}],
    }
