"""The PII corpus is a fair judge, and the evaluator scores by the stated rule.

Every gold span is checked here by validators written independently of the generator (Luhn,
mod-97, ISO 7064 MOD 11-2, SSN rules, ``ipaddress``, ...); the text outside the gold spans is
scanned for values those validators would accept, so no real PII hides among the negatives;
and the hard negatives the corpus promises are counted.
"""

from __future__ import annotations

import base64
import bisect
import datetime as dt
import functools
import itertools
import json
import re
from collections import Counter
from collections.abc import Callable, Iterator

import pytest

from tests.pii.corpus import (
    CORPUS_PATH,
    ENTITIES,
    GENRES,
    Document,
    baseline_find,
    dumps,
    evaluate,
    generate,
    load_corpus,
)


@pytest.fixture(scope="module")
def docs() -> list[Document]:
    return load_corpus()


def spans_of(docs: list[Document], entity: str) -> Iterator[tuple[Document, int, int, str]]:
    for doc in docs:
        for start, end, kind in doc.spans:
            if kind == entity:
                yield doc, start, end, doc.text[start:end]


def outside(doc: Document) -> str:
    """The text with every gold span blanked out by NULs (same offsets, no word characters)."""
    chars = list(doc.text)
    for start, end, _ in doc.spans:
        chars[start:end] = "\0" * (end - start)
    return "".join(chars)


# --- Independent validators -------------------------------------------------------------------


def luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch) * (1 + i % 2)
        total += d // 10 + d % 10
    return total % 10 == 0


ISSUERS = [  # (prefix pattern, allowed lengths)
    (r"4", {13, 16, 19}),
    (r"5[1-5]", {16}),
    (r"2(?:22[1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)", {16}),
    (r"3[47]", {15}),
    (r"(?:6011|65|64[4-9])", {16}),
    (r"35(?:2[89]|[3-8]\d)", {16}),
    (r"(?:36|30[0-5])", {14}),
    (r"62", {16, 17, 18, 19}),
]
CARD_GROUPS = ([4, 4, 4, 4], [4, 6, 5], [4, 6, 4], [4, 4, 4, 4, 3])


def card_like(digits: str) -> bool:
    issuer = any(re.match(p, digits) and len(digits) in n for p, n in ISSUERS)
    return issuer and luhn_ok(digits)


def valid_card(s: str) -> bool:
    groups = re.split(r"[ -]", s)
    if not all(g.isdigit() for g in groups) or len(set(re.findall(r"[ -]", s))) > 1:
        return False
    if len(groups) > 1 and [len(g) for g in groups] not in CARD_GROUPS:
        return False
    return card_like("".join(groups))


def valid_ssn(s: str) -> bool:
    m = re.fullmatch(r"(\d{3})([- ]?)(\d{2})\2(\d{4})", s)
    if not m:
        return False
    area, group, serial = int(m[1]), int(m[3]), int(m[4])
    return 0 < area < 900 and area != 666 and group > 0 and serial > 0


EMAIL = re.compile(
    r"[A-Za-z0-9](?:[A-Za-z0-9._%+-]*[A-Za-z0-9])?@(?:[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?\.)+"
    r"[A-Za-z]{2,}"
)
PROVINCES = {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46}
PROVINCES |= {50, 51, 52, 53, 54, 61, 62, 63, 64, 65}


def valid_cn_id(s: str) -> bool:
    if not re.fullmatch(r"\d{17}[\dX]", s) or int(s[:2]) not in PROVINCES or s[2:6] == "0000":
        return False
    try:
        born = dt.date(int(s[6:10]), int(s[10:12]), int(s[12:14]))
    except ValueError:
        return False
    # ISO 7064 MOD 11-2: with X = 10, sum(a_i * 2^(17-i)) over all 18 characters is 1 mod 11.
    values = [10 if c == "X" else int(c) for c in s]
    return (
        1940 <= born.year <= 2010 and sum(v * 2 ** (17 - i) for i, v in enumerate(values)) % 11 == 1
    )


IBAN_LENGTHS = {"DE": 22, "GB": 22, "FR": 27, "ES": 24, "IT": 27, "NL": 18, "CH": 21, "BE": 16}


def valid_iban(s: str) -> bool:
    compact = s.replace(" ", "")
    groups = s.split(" ")
    if len(groups) > 1 and (any(len(g) != 4 for g in groups[:-1]) or not 0 < len(groups[-1]) <= 4):
        return False
    if IBAN_LENGTHS.get(compact[:2]) != len(compact) or not re.fullmatch(r"[A-Z0-9]+", compact):
        return False
    moved = compact[4:] + compact[:4]
    return int("".join(str(ord(c) - 55) if c.isalpha() else c for c in moved)) % 97 == 1


def valid_ip(s: str) -> bool:
    import ipaddress

    try:
        ipaddress.ip_address(s)
    except ValueError:
        return False
    return True


PHONE_PLANS = (
    r"\+1[2-9]\d\d[2-9]\d{6}",  # NANP, E.164
    r"[2-9]\d\d[2-9]\d{6}",  # NANP national (only ever written with separators)
    r"\+447\d{9}",  # UK mobile
    r"\+33[67]\d{8}",  # France mobile
    r"\+491[5-7]\d{8,9}",  # Germany mobile
    r"\+81[789]0\d{8}",  # Japan mobile
    r"(?:\+86)?1[3-9]\d{9}",  # China mobile
)


def valid_phone(s: str) -> bool:
    if not re.fullmatch(r"\+?[\d(][\d ().-]*\d", s) or re.fullmatch(r"\d{10}", s):
        return False
    normal = ("+" if s.startswith("+") else "") + re.sub(r"\D", "", s)
    return any(re.fullmatch(p, normal) for p in PHONE_PLANS)


SECRET_FORMS = [
    re.compile(p)
    for p in (
        r"sk-ant-api03-[A-Za-z0-9_-]{93}AA",
        r"sk-proj-[A-Za-z0-9_-]{100,}",
        r"sk-[A-Za-z0-9]{48}",
        r"AKIA[A-Z0-9]{16}",
        r"gh[pos]_[A-Za-z0-9]{36}",
        r"github_pat_[A-Za-z0-9_]{82}",
        r"xoxb-\d+-\d+-[A-Za-z0-9]+|xoxp-\d+-\d+-\d+-[a-f0-9]+",
    )
]
PEM = re.compile(
    r"-----BEGIN ((?:RSA |EC |OPENSSH )?PRIVATE KEY)-----(\n|\\n)"
    r"((?:[A-Za-z0-9+/=]{1,70}\2)+)-----END \1-----"
)


def valid_secret(doc: Document, start: int, s: str) -> bool:
    if any(p.fullmatch(s) for p in SECRET_FORMS):
        return True
    if m := PEM.fullmatch(s):
        base64.b64decode(m[3].replace(m[2], ""), validate=True)
        return True
    if not doc.text[:start].endswith("Bearer "):
        return False
    if s.startswith("eyJ"):  # a JWT: its header is base64url JSON naming an algorithm
        header = s.split(".")[0]
        return "alg" in json.loads(base64.urlsafe_b64decode(header + "=" * (-len(header) % 4)))
    return re.fullmatch(r"[A-Za-z0-9._~+/-]{32,}", s) is not None


COMPACT_SSN_CONTEXT = re.compile(r"(?i)ssn|social security")


def check_span(doc: Document, start: int, end: int, entity: str) -> bool:
    s = doc.text[start:end]
    if entity == "CREDIT_CARD":
        return valid_card(s)
    if entity == "US_SSN":
        return valid_ssn(s) and (
            not s.isdigit()
            or bool(COMPACT_SSN_CONTEXT.search(doc.text[max(0, start - 40) : start]))
        )
    if entity == "EMAIL":
        return EMAIL.fullmatch(s) is not None and ".." not in s
    if entity == "PHONE":
        return valid_phone(s)
    if entity == "CN_ID":
        return valid_cn_id(s)
    if entity == "IBAN":
        return valid_iban(s)
    if entity == "IP_ADDRESS":
        return valid_ip(s)
    return entity == "SECRET" and valid_secret(doc, start, s)


# --- The corpus -------------------------------------------------------------------------------


def test_spans_are_sorted_in_bounds_and_not_glued_to_words(docs: list[Document]) -> None:
    for doc in docs:
        previous_end = 0
        for start, end, entity in doc.spans:
            assert entity in ENTITIES, doc.id
            assert previous_end <= start < end <= len(doc.text), (doc.id, start, end)
            text = doc.text[start:end]
            assert text == text.strip(), (doc.id, text)
            before, after = doc.text[start - 1 : start], doc.text[end : end + 1]
            assert not (before.isascii() and before.isalnum()), (doc.id, text)
            assert not (after.isascii() and after.isalnum()), (doc.id, text)
            previous_end = end


@pytest.mark.parametrize("entity", ENTITIES)
def test_every_span_passes_an_independent_check(docs: list[Document], entity: str) -> None:
    bad = [
        (d.id, s)
        for d, start, end, s in spans_of(docs, entity)
        if not check_span(d, start, end, entity)
    ]
    assert not bad, bad[:5]


@pytest.mark.parametrize("entity", ENTITIES)
def test_each_entity_has_enough_gold_spans(docs: list[Document], entity: str) -> None:
    assert sum(1 for _ in spans_of(docs, entity)) >= 150


def test_formats_that_are_promised_are_present(docs: list[Document]) -> None:
    def count(entity: str, pattern: str) -> int:
        return sum(1 for _, _, _, s in spans_of(docs, entity) if re.fullmatch(pattern, s))

    assert count("CREDIT_CARD", r"3[47]\d\d[ -]\d{6}[ -]\d{5}") >= 10  # Amex 4-6-5
    assert count("CREDIT_CARD", r"\d{4}( \d{4}){3}") >= 30
    assert count("CREDIT_CARD", r"\d{4}(-\d{4}){3}") >= 30
    assert count("CREDIT_CARD", r"62\d{15,17}") >= 10  # UnionPay 17-19 digits
    assert count("US_SSN", r"\d{3} \d\d \d{4}") >= 20
    assert count("US_SSN", r"\d{9}") >= 20
    assert count("PHONE", r"\(\d{3}\) \d{3}-\d{4}") >= 10
    assert count("PHONE", r"\+86[ -]1\d\d[ -]\d{4}[ -]\d{4}") >= 20
    assert count("CN_ID", r"\d{17}X") >= 10
    assert count("IBAN", r"[A-Z]{2}\d\d( [A-Z0-9]{4})+( [A-Z0-9]{1,3})?") >= 50
    assert count("IP_ADDRESS", r"[0-9a-f:]*::[0-9a-f:]*") >= 50
    assert count("IP_ADDRESS", r"([0-9a-f]{4}:){7}[0-9a-f]{4}") >= 20
    assert count("SECRET", r"-----BEGIN [\s\S]+") >= 50
    assert count("SECRET", r"eyJ[\w-]+\.eyJ[\w-]+\.[\w-]+") >= 50
    after_cjk = [
        (e, d.text[a - 1])
        for d in docs
        for a, _, e in d.spans
        if a and "\u4e00" <= d.text[a - 1] <= "\u9fff"
    ]
    for entity in ("CREDIT_CARD", "PHONE", "CN_ID", "EMAIL"):
        assert sum(e == entity for e, _ in after_cjk) >= 20, entity  # written right after Chinese


def test_every_issuer_key_family_and_phone_plan_is_present(docs: list[Document]) -> None:
    cards = [re.sub(r"\D", "", s) for _, _, _, s in spans_of(docs, "CREDIT_CARD")]
    for prefix, lengths in ISSUERS:
        for length in lengths:
            assert sum(bool(re.match(prefix, c)) and len(c) == length for c in cards) >= 5, prefix
    secrets = [s for _, _, _, s in spans_of(docs, "SECRET")]
    families = [p.pattern for p in SECRET_FORMS] + [
        rf"-----BEGIN {kind}-----[\s\S]+"
        for kind in ("RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY")
    ]
    for family in [*families, r"eyJ[\w.-]+", r"[A-Za-z0-9_-]{32,64}", r"sk-ant-.*|sk-proj-.*"]:
        assert sum(bool(re.fullmatch(family, s)) for s in secrets) >= 10, family
    phones = [re.sub(r"[^\d+]", "", s) for _, _, _, s in spans_of(docs, "PHONE")]
    for plan in PHONE_PLANS:
        assert sum(bool(re.fullmatch(plan, p)) for p in phones) >= 10, plan
    countries = Counter(s[:2] for _, _, _, s in spans_of(docs, "IBAN"))
    assert all(countries[c] >= 10 for c in IBAN_LENGTHS), countries


def test_languages_and_genres(docs: list[Document]) -> None:
    cjk = re.compile(r"[\u4e00-\u9fff]")
    assert Counter(d.lang for d in docs).keys() == {"en", "zh", "mixed"}
    for genre in GENRES:
        langs = Counter(d.lang for d in docs if d.genre == genre)
        assert all(langs[lang] >= 30 for lang in ("en", "zh", "mixed")), (genre, langs)
    assert not [d.id for d in docs if d.lang == "en" and cjk.search(d.text)]
    assert not [d.id for d in docs if d.lang != "en" and not cjk.search(d.text)]
    assert 1500 <= len(docs) <= 2500
    assert 1_000_000 <= CORPUS_PATH.stat().st_size <= 2_100_000


def test_prose_is_varied(docs: list[Document]) -> None:
    skeletons: Counter[str] = Counter()
    for doc in docs:
        for line in outside(doc).splitlines():
            if len(line) >= 20:
                skeletons[re.sub(r"[\0\d]+", "#", line)] += 1
    assert len({d.text for d in docs}) >= 0.99 * len(docs)
    assert len(skeletons) >= 5000
    assert skeletons.most_common(1)[0][1] < len(docs) // 4  # no sentence dominates


def test_regenerating_gives_identical_bytes() -> None:
    assert dumps(generate()).encode() == CORPUS_PATH.read_bytes()


def test_phone_numbers_are_valid_in_their_numbering_plan(docs: list[Document]) -> None:
    phonenumbers = pytest.importorskip("phonenumbers")
    for doc, _, _, s in spans_of(docs, "PHONE"):
        region = None if s.startswith("+") else ("CN" if s.startswith("1") else "US")
        assert phonenumbers.is_valid_number(phonenumbers.parse(s, region)), (doc.id, s)


# --- No PII hides outside the gold spans; the promised hard negatives are there ------------------

NEGATIVE_CONTEXT = re.compile(r"(?i)order|invoice|tracking|订单|发票|快递")


@functools.cache
def masked(docs: tuple[Document, ...]) -> tuple[str, list[int]]:
    """All documents outside their gold spans, joined by newlines, and where each one starts."""
    texts = [outside(doc) for doc in docs]
    starts = list(itertools.accumulate((len(t) + 1 for t in texts[:-1]), initial=0))
    return "\n".join(texts), starts


def scan(docs: list[Document], pattern: str) -> Iterator[tuple[Document, int, str]]:
    """Each match of ``pattern`` outside the gold spans: its document, offset in it, and text."""
    joined, starts = masked(tuple(docs))
    for m in re.finditer(pattern, joined):
        i = bisect.bisect_right(starts, m.start()) - 1
        yield docs[i], m.start() - starts[i], m[0]


def test_no_valid_value_is_left_unlabelled(docs: list[Document]) -> None:
    joined, _ = masked(tuple(docs))
    for at in (m.start() for m in re.finditer("@", joined)):  # emails: look around each "@"
        window = joined[max(0, at - 64) : at + 256]
        emails = [
            m[0] for m in EMAIL.finditer(window) if m.start() < at - max(0, at - 64) < m.end()
        ]
        assert not emails, emails
    found: dict[str, Callable[[str], bool]] = {
        # (A look-behind placed after the first character lets the regex engine scan faster.)
        r"\d(?<![\dA-Z]\d)\d{16}[\dX](?![\dA-Z])": valid_cn_id,
        r"\d(?<!\d\d)\d\d[- ]\d\d[- ]\d{4}(?!\d)": valid_ssn,
        r"\d(?<![\w-]\d)\d{3}([ -])\d{4,6}(?:\1\d{3,5}){1,3}(?![\w-])": valid_card,
        r"[A-Z](?<!\w[A-Z])[A-Z]\d\d(?: ?[A-Z0-9]{4}){2,6}(?: ?[A-Z0-9]{1,3})?\b": valid_iban,
        r"1(?<![0-9A-Za-z+-]1)[3-9]\d{9}(?![0-9A-Za-z])": valid_phone,
        r"\+\d[\d -]{9,}\d": valid_phone,
        r"(?<![\w:])[0-9A-Fa-f]{0,4}(?::[0-9A-Fa-f]{0,4}){2,7}(?![\w:])": (
            lambda s: len(re.sub(r"\W", "", s)) >= 3 and valid_ip(s)
        ),
    }
    for pattern, valid in found.items():
        hits = [(d.id, s) for d, _, s in scan(docs, pattern) if valid(s)]
        assert not hits, (pattern, hits[:5])
    for form in [*SECRET_FORMS, re.compile(r"BEGIN [A-Z ]*PRIVATE KEY|Bearer [\w.~+/-]{20,}")]:
        hits = [(d.id, s) for d, _, s in scan(docs, form.pattern)]
        assert not hits, (form.pattern, hits[:5])


def test_hard_negatives_are_plentiful_and_in_context(docs: list[Document]) -> None:
    kinds: Counter[str] = Counter()
    for doc, start, s in scan(docs, r"\d[\d.,-]*\d"):  # numbers, with their separators
        if s.isdigit() and 13 <= len(s) <= 19 and card_like(s):
            kinds["card-like"] += 1
            context = doc.text[max(0, start - 40) : start]
            header = doc.text.split("\n", 1)[0] if doc.genre == "csv_export" else ""
            assert NEGATIVE_CONTEXT.search(context + header), (doc.id, s)
        elif s.isdigit() and len(s) == 18:
            kinds["18 digits, not a CN ID"] += not valid_cn_id(s)
        elif s.isdigit() and len(s) in (10, 13) and s[0] == "1" and s[1] in "567":
            kinds["Unix time"] += 1
        elif re.fullmatch(r"\d{3}-\d\d-\d{4}", s):
            kinds["invalid SSN"] += not valid_ssn(s)
        elif re.fullmatch(r"\d+(?:\.\d+){3,4}", s):
            kinds["dotted quad, an IP" if valid_ip(s) else "invalid IP"] += 1
        elif re.fullmatch(r"\d{1,3}(?:,\d{3})+\.\d\d", s):
            kinds["1,234.56"] += 1
    assert kinds["card-like"] >= 300
    assert kinds["18 digits, not a CN ID"] >= 200
    assert kinds["Unix time"] >= 200
    assert kinds["invalid SSN"] >= 80
    assert kinds["dotted quad, an IP"] >= 100  # "version 1.2.3.4"
    assert kinds["invalid IP"] >= 100
    assert kinds["1,234.56"] >= 300

    def count(pattern: str) -> int:
        return sum(1 for _ in scan(docs, pattern))

    assert count(r"[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}") >= 300
    assert count(r"(?<![0-9a-z])[0-9a-f]{32,64}(?![0-9a-z])") >= 300  # md5, sha1, sha256, git
    assert count(r"version[ =]v?\d+\.\d+|版本 ?v?\d+\.\d+") >= 200
    assert count(r"sk-(?:learn|ant-\.\.\.|ant-开头)") >= 30
    assert count(r"Bearer(?! [\w.~+/-]{20,})") >= 50
    assert count(r"BEGIN (?:PUBLIC KEY|CERTIFICATE)") >= 10
    assert count(r"978-?\d") >= 100  # ISBNs


# --- The evaluator ------------------------------------------------------------------------------


def test_gold_finder_scores_perfectly(docs: list[Document]) -> None:
    gold = {d.text: d.spans for d in docs}
    assert all(gold[d.text] == d.spans for d in docs)  # a repeated text is labelled the same
    report = evaluate(lambda text: gold[text], docs)
    for entity in ENTITIES:
        score = report.per_entity[entity]
        assert (score.precision, score.recall, score.fp, score.fn) == (1.0, 1.0, 0, 0), entity
    assert report.intact == 1.0
    assert report.words > 100_000


def test_a_finder_flagging_every_digit_run_is_imprecise(docs: list[Document]) -> None:
    def every_digit_run(text: str) -> Iterator[tuple[int, int, str]]:
        return ((m.start(), m.end(), "CREDIT_CARD") for m in re.finditer(r"\d+", text))

    report = evaluate(every_digit_run, docs)
    assert report.per_entity["CREDIT_CARD"].precision < 0.1
    assert report.per_entity["CREDIT_CARD"].recall == 1.0
    assert report.intact < 0.9


def test_matching_rule_on_a_small_document() -> None:
    text = "card 4111 1111 1111 1111 and mail a@b.co now 你好"
    doc = Document("t", "en", "contract", text, ((5, 24, "CREDIT_CARD"), (34, 40, "EMAIL")))
    findings = [
        (5, 9, "CREDIT_CARD"),  # overlaps the card: tp
        (10, 14, "CREDIT_CARD"),  # the card is already matched: neither tp nor fp
        (34, 40, "PHONE"),  # no PHONE in the gold set: a PHONE fp
        (41, 44, "EMAIL"),  # overlaps no EMAIL span: fp, and hits the word "now"
        (46, 47, "PERSON"),  # a type the corpus never labels: fp, and hits one CJK word
    ]
    report = evaluate(lambda _: findings, [doc])
    card, mail = report.per_entity["CREDIT_CARD"], report.per_entity["EMAIL"]
    assert (card.tp, card.fp, card.fn, card.extra) == (1, 0, 0, 1)
    assert (mail.tp, mail.fp, mail.fn) == (0, 1, 1)
    assert (report.per_entity["PHONE"].fp, report.per_entity["PERSON"].fp) == (1, 1)
    assert (card.precision, mail.recall, mail.precision) == (1.0, 0.0, 0.0)
    assert (report.words, report.words_intact) == (6, 4)  # card, and, mail, now, 你, 好
    table = report.table()
    assert table.splitlines()[0] == "| entity | gold | precision | recall |"
    assert "| CREDIT_CARD | 1 | 1.000 | 1.000 |" in table and "| PERSON | 0 | 0.000 | - |" in table


def test_one_gold_span_matches_one_finding_of_each_kind() -> None:
    doc = Document("t", "en", "server_log", "a 1.2.3.4 b 5.6.7.8", ((2, 9, "IP_ADDRESS"),))
    report = evaluate(
        lambda _: [(2, 9, "IP_ADDRESS"), (2, 9, "IP_ADDRESS"), (12, 19, "IP_ADDRESS")], [doc]
    )
    score = report.per_entity["IP_ADDRESS"]
    assert (score.tp, score.fp, score.fn, score.extra) == (1, 1, 0, 1)


def test_baseline_finder() -> None:
    text = "card 4111-1111-1111-1111, ssn 078-05-1120, 卡号4111111111111111, order 123456789"
    found = [(text[s:e], kind) for s, e, kind in baseline_find(text)]
    assert found == [
        ("4111-1111-1111-1111", "CREDIT_CARD"),
        ("078-05-1120", "US_SSN"),
        ("123456789", "US_SSN"),  # no \b between 号 and the digits, so the Chinese one is missed
    ]
