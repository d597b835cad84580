"""A labelled PII corpus (English, Chinese, mixed) and the evaluator detectors are scored with.

``python -m tests.pii.corpus`` (from the repository root) rewrites ``tests/pii/corpus.jsonl``.
Generation is deterministic (one ``random.Random(SEED)``, no network). Every labelled value is
valid by construction (Luhn, mod-97, ISO 7064 MOD 11-2, SSN rules, numbering plans); the hard
negatives (order, tracking and invoice numbers, timestamps, versions, hashes, invalid IDs, ...)
are unlabelled and sit in the same genres and sentences, so precision is tested as hard as recall.
"""

from __future__ import annotations

import base64
import datetime as dt
import functools
import ipaddress
import itertools
import json
import re
import string
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from random import Random

SEED, N_DOCS = 20240611, 2000
CORPUS_PATH = Path(__file__).with_name("corpus.jsonl")
ENTITIES = ("CREDIT_CARD", "US_SSN", "EMAIL", "PHONE", "CN_ID", "IBAN", "IP_ADDRESS", "SECRET")
GENRES = ("contract", "support_chat", "server_log", "source_code", "csv_export", "email_ticket")
LANGS = ("en", "zh", "mixed")
DIGITS, HEX, UPPER = string.digits, "0123456789abcdef", string.ascii_uppercase
ALNUM = string.ascii_letters + string.digits
B64URL = ALNUM + "-_"

Span = tuple[int, int, str]
Finder = Callable[[str], Iterable[tuple[int, int, str]]]
Gen = Callable[[Random], str]


@dataclass(frozen=True)
class Document:
    id: str
    lang: str
    genre: str
    text: str
    spans: tuple[Span, ...]


def _parse_words(block: str) -> dict[str, list[str]]:
    words: dict[str, list[str]] = {}
    for key, *items in (line.split() for line in block.strip().splitlines()):
        words.setdefault(key, []).extend(w.replace("_", " ") for w in items)
    return words


# Word lists: "KEY word word ..." ("_" stands for a space; a key may continue on the next line).
# Every list is also a slot that templates can use, e.g. {CITY}.
W = _parse_words("""
FIRST James Mary Robert Jennifer Michael Linda David Susan Daniel Karen Priya Arjun Omar Fatima
FIRST Lucas Sofia Mateo Chloe Ethan Olivia Noah Emma Liam Hannah Kenji Yuki Ahmed Elena Marco Zoe
LAST Smith Johnson Williams Brown Jones Garcia Miller Davis Martinez Lopez Wilson Anderson Taylor
LAST Moore Jackson Martin Lee Thompson White Harris Clark Walker Nguyen Kim Patel Schmidt Rossi
PYSUR wang li zhang liu chen yang huang zhao wu zhou xu sun ma zhu hu guo he lin luo gao
PYGIVEN wei fang na min jing qiang lei jun yang yong yan jie tao ming chao ying hua xin yu
CNSUR 王 李 张 刘 陈 杨 黄 赵 吴 周 徐 孙 马 朱 胡 郭 何 林 罗 高
CNGIVEN 伟 芳 娜 敏 静 丽 强 磊 军 洋 勇 艳 杰 涛 明 超 秀 英 华 鑫 宇 浩 婷
MAIL gmail.com outlook.com yahoo.com icloud.com proton.me hotmail.co.uk web.de orange.fr
CNMAIL qq.com 163.com 126.com foxmail.com sina.com aliyun.com vip.163.com
TLD com io co dev ai net org co.uk de fr nl ch com.au ca jp cn com.cn tech app
CO Acme Northwind Globex Initech Umbrella Contoso Fabrikam Hooli Vandelay Tyrell Wonka
COSUFFIX Inc. LLC Ltd GmbH Corp. S.A. Holdings
CITY Seattle Austin Boston Denver Chicago London Berlin Paris Toronto Sydney
CNCITY 北京 上海 广州 深圳 杭州 成都 南京 武汉 西安 苏州 重庆 天津
CNBRAND 星辰 华信 恒通 云帆 博远 中科 天和 新源
CNKIND 科技有限公司 贸易有限公司 网络科技股份有限公司 信息技术有限公司
STATE Delaware New_York California Texas England_and_Wales Ontario
TITLE CEO CTO CFO Head_of_Finance Procurement_Manager Account_Executive
DEPT Engineering Finance Sales Legal Support HR
CNWORD 研发部 财务部 销售部 法务部 客服部 人事部 无线耳机 机械键盘 显示器
SVC gateway billing auth orders search payments notifier ledger kyc
STATUS 200 200 200 201 204 301 400 401 403 404 429 500 502 503
METHOD GET GET POST PUT DELETE PATCH
BIC DEUTDEFF BNPAFRPP COBADEFFXXX NWBKGB2L INGBNL2A UBSWCHZH80A ICBKCNBJ
USAREA 201 202 206 212 213 214 305 310 312 404 408 415 469 503 512 602 617 646 650 702 713 718
USAREA 720 773 786 818 832 858 917 919 949 972
CNMOBILE 130 131 132 133 134 135 136 137 138 139 150 151 152 153 155 156 157 158 159 166 177
CNMOBILE 180 181 182 183 185 186 187 188 189 199
CNREGION 110101 110105 110108 120101 130102 140105 150102 210102 220102 230102 310101 310104
CNREGION 310115 320102 320505 330106 340104 350203 360102 370202 410105 420106 430104 440106
CNREGION 440305 450103 460105 500103 510107 520102 530102 540102 610113 620102 630102 640104
CNREGION 650102
""")


def _pick(r: Random, n: int, alphabet: str = DIGITS) -> str:
    return "".join(r.choices(alphabet, k=n))


def _grouped(s: str, sizes: Iterable[int], sep: str) -> str:
    cuts = list(itertools.accumulate(sizes, initial=0))
    return sep.join(s[a:b] for a, b in itertools.pairwise(cuts))


# --- Labelled values ---------------------------------------------------------------------------


def luhn_digit(body: str) -> str:
    """The check digit that makes ``body + digit`` pass the Luhn test."""
    total = sum(sum(divmod(int(c) * (2 - i % 2), 10)) for i, c in enumerate(reversed(body)))
    return str(-total % 10)


BRANDS: list[tuple[Gen, tuple[int, ...], int]] = [  # issuer prefix, lengths, weight
    (lambda r: "4", (16, 16, 16, 16, 13, 19), 30),  # Visa
    (lambda r: str(r.randint(51, 55)), (16,), 14),  # Mastercard
    (lambda r: str(r.randint(2221, 2720)), (16,), 6),  # Mastercard 2-series
    (lambda r: r.choice(("34", "37")), (15,), 12),  # Amex
    (lambda r: r.choice(("6011", "65", str(r.randint(644, 649)))), (16,), 8),  # Discover
    (lambda r: str(r.randint(3528, 3589)), (16,), 6),  # JCB
    (lambda r: r.choice(("36", str(r.randint(300, 305)))), (14,), 6),  # Diners
    (lambda r: "62" + r.choice(("2202", "1700", "2848", "2588", "1483")), (16, 17, 18, 19), 18),
]
CARD_GROUPS = {14: (4, 6, 4), 15: (4, 6, 5), 16: (4, 4, 4, 4), 19: (4, 4, 4, 4, 3)}


def card_number(r: Random, length: int = 0) -> str:
    while True:
        prefix_of, lengths, _ = r.choices(BRANDS, weights=[b[2] for b in BRANDS])[0]
        if (n := r.choice(lengths)) == length or not length:
            body = prefix_of(r)
            body += _pick(r, n - len(body) - 1)
            return body + luhn_digit(body)


def card(r: Random) -> str:
    num = card_number(r)
    if len(num) not in CARD_GROUPS or r.random() < 0.35:
        return num
    return _grouped(num, CARD_GROUPS[len(num)], " " if r.random() < 0.6 else "-")


SSN_AREAS = [a for a in range(1, 900) if a != 666]


def ssn(r: Random, sep: str = "-") -> str:
    area, group, serial = r.choice(SSN_AREAS), r.randint(1, 99), r.randint(1, 9999)
    return f"{area:03d}{sep}{group:02d}{sep}{serial:04d}"


def bad_ssn(r: Random) -> str:
    """An SSN-shaped number with area 000, 666 or 9xx, group 00 or serial 0000."""
    parts, k = ssn(r).split("-"), r.randrange(5)
    if k < 3:
        parts[0] = ("000", "666", str(r.randint(900, 999)))[k]
    else:
        parts[k - 2] = "00" if k == 3 else "0000"
    return ("-" if r.random() < 0.8 else "").join(parts)


def email(r: Random, cn: bool = False) -> str:
    if cn:
        first, last = r.choice(W["PYGIVEN"]), r.choice(W["PYSUR"])
    else:
        first, last = r.choice(W["FIRST"]).lower(), r.choice(W["LAST"]).lower()
    tag = "+" + r.choice(("news", "billing", "dev", "test", "2024", "shop", "jobs"))
    local = r.choice(
        (f"{first}.{last}", f"{first[0]}{last}", f"{first}_{last}", f"{last}{first}",
         f"{first}{r.randint(1, 9999)}", f"{last}.{first}{r.randint(1, 99)}",
         f"{first}.{last}{tag}", f"{first}{tag}", r.choice(("billing", "support", "hr", "ops")))
    )  # fmt: skip
    if r.random() < 0.55:
        return f"{local}@{r.choice(W['CNMAIL' if cn else 'MAIL'])}"
    sub = r.choice(("mail.", "eu.", "us.", "corp.", "cn.", "dev.")) if r.random() < 0.3 else ""
    org = r.choice(W["CO"]).lower() + r.choice(("", "-corp", "labs"))
    return f"{local}@{sub}{org}.{r.choice(W['TLD'])}"


US_EXCHANGES = [x for x in range(200, 1000) if x % 100 != 11]


def us_phone(r: Random) -> str:
    a, x, n = r.choice(W["USAREA"]), r.choice(US_EXCHANGES), _pick(r, 4)
    return r.choice(
        (f"+1{a}{x}{n}", f"({a}) {x}-{n}", f"{a}-{x}-{n}", f"{a}.{x}.{n}", f"+1 {a} {x} {n}",
         f"+1 ({a}) {x}-{n}", f"+1-{a}-{x}-{n}")
    )  # fmt: skip


def cn_phone(r: Random) -> str:
    p, a, b = r.choice(W["CNMOBILE"]), _pick(r, 4), _pick(r, 4)
    return r.choice(
        (f"{p}{a}{b}", f"{p}{a}{b}", f"+86 {p} {a} {b}", f"+86-{p}-{a}-{b}", f"{p}-{a}-{b}",
         f"+86 {p}{a}{b}", f"{p} {a} {b}", f"+86{p}{a}{b}")
    )  # fmt: skip


INTL_MOBILE = [  # country code, national prefixes, digits after them, written grouping
    ("44", "7400 7412 7507 7723 7801 7946 7975", 6, (4, 6), " "),  # UK
    ("33", "60 61 62 64 65 66 67 68 75 77", 7, (1, 2, 2, 2, 2), " "),  # France
    ("49", "151 152 157 162 176 178", 8, (3, 8), " "),  # Germany
    ("81", "701 702 803 805 808 901 902 906 909", 7, (2, 4, 4), "-"),  # Japan
]


def intl_phone(r: Random) -> str:
    cc, prefixes, n, groups, sep = r.choice(INTL_MOBILE)
    num = r.choice(prefixes.split()) + _pick(r, n)
    return f"+{cc}{num}" if r.random() < 0.5 else f"+{cc} {_grouped(num, groups, sep)}"


def phone(r: Random) -> str:
    return r.choices((us_phone, cn_phone, intl_phone), weights=(45, 35, 20))[0](r)


def _card_like(digits: str) -> bool:
    """Luhn-valid with a card-ish first digit: kept out of the negatives except {LUHN16}."""
    return (
        13 <= len(digits) <= 19 and digits[0] in "23456" and luhn_digit(digits[:-1]) == digits[-1]
    )


def cnid_check(body17: str) -> str:
    weights = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
    return "10X98765432"[sum(int(c) * w for c, w in zip(body17, weights, strict=True)) % 11]


def _cnid_date_ok(s: str) -> bool:
    try:
        return 1940 <= dt.date(int(s[6:10]), int(s[10:12]), int(s[12:14])).year <= 2010
    except ValueError:
        return False


def cn_id(r: Random) -> str:
    born = dt.date(1940, 1, 1) + dt.timedelta(days=r.randrange(25568))  # to 2010-12-31
    body = r.choice(W["CNREGION"]) + born.strftime("%Y%m%d") + _pick(r, 3)
    return body + cnid_check(body)


def bad_cn_id(r: Random) -> str:
    """18 digits failing the checksum, or with an impossible date and a right checksum."""
    while True:
        body = cn_id(r)[:17]
        if r.random() < 0.5:
            s = body + r.choice([d for d in DIGITS if d != cnid_check(body)])
        else:
            body = (
                body[:10] + r.choice(("0230", "0231", "1301", "0000", "0432", "1135")) + body[14:]
            )
            s = body + cnid_check(body)
        if s.isdigit() and not _card_like(s):
            return s


def _es_bban(r: Random) -> str:
    def dc(ten: str) -> str:
        d = (
            11
            - sum(int(c) * x for c, x in zip(ten, (1, 2, 4, 8, 5, 10, 9, 7, 3, 6), strict=True))
            % 11
        )
        return str({11: 0, 10: 1}.get(d, d))

    bank, acct = _pick(r, 8), _pick(r, 10)
    return bank + dc("00" + bank) + dc(acct) + acct


def _fr_bban(r: Random) -> str:
    bank, branch, acct = _pick(r, 5), _pick(r, 5), _pick(r, 11)
    key = 97 - (89 * int(bank) + 15 * int(branch) + 3 * int(acct)) % 97
    return f"{bank}{branch}{acct}{key:02d}"


def _it_bban(r: Random) -> str:
    odd = (1, 0, 5, 7, 9, 13, 15, 17, 19, 21)  # the CIN's weights of the digits in odd places
    rest = _pick(r, 22)
    return chr(65 + sum(int(c) if i % 2 else odd[int(c)] for i, c in enumerate(rest)) % 26) + rest


def _nl_bban(r: Random) -> str:
    while True:  # the Dutch "elfproef": digits weighted 10..1 sum to a multiple of 11
        acct = _pick(r, 9)
        if (d := -sum(int(c) * (10 - i) for i, c in enumerate(acct)) % 11) < 10:
            return r.choice(("ABNA", "RABO", "TRIO", "SNSB")) + acct + str(d)


def _be_bban(r: Random) -> str:
    ten = _pick(r, 10)
    return f"{ten}{int(ten) % 97 or 97:02d}"


IBAN_BBAN: dict[str, Gen] = {  # national parts, with their own check digits where there are any
    "DE": lambda r: str(r.randint(1, 9)) + _pick(r, 17),
    "GB": lambda r: r.choice(("NWBK", "BARC", "HBUK", "LOYD", "MIDL")) + _pick(r, 14),
    "FR": _fr_bban,
    "ES": _es_bban,
    "IT": _it_bban,
    "NL": _nl_bban,
    "CH": lambda r: _pick(r, 17),
    "BE": _be_bban,
}


def iban(r: Random) -> str:
    cc = r.choice(list(IBAN_BBAN))
    bban = IBAN_BBAN[cc](r)
    check = 98 - int("".join(str(int(c, 36)) for c in bban + cc + "00")) % 97
    compact = f"{cc}{check:02d}{bban}"
    return compact if r.random() < 0.4 else " ".join(re.findall(".{1,4}", compact))


PUBLIC_FIRST_OCTETS = [a for a in range(1, 224) if a not in (10, 127)]


def ip4(r: Random) -> str:
    k, a, b, c = r.random(), r.randrange(256), r.randrange(256), r.randint(1, 254)
    if k < 0.45:
        return r.choice((f"10.{a}.{b}.{c}", f"192.168.{b}.{c}", f"172.{r.randint(16, 31)}.{b}.{c}"))
    return f"{r.choice(PUBLIC_FIRST_OCTETS)}.{a}.{b}.{c}"


def ip6(r: Random) -> str:
    head = r.choice(("2001:db8", "2001:0db8", "2a00:1450", "2606:4700", "fe80:0", "fd12:3456"))
    tail = [f"{r.randrange(65536):x}" if r.random() < 0.6 else "0" for _ in range(6)]
    addr = ipaddress.IPv6Address(":".join([*head.split(":"), *tail]))
    return addr.exploded if r.random() < 0.25 else addr.compressed


def ant_key(r: Random) -> str:
    return "sk-ant-api03-" + _pick(r, 93, B64URL) + "AA"


def openai_key(r: Random) -> str:
    if r.random() < 0.6:
        return "sk-proj-" + _pick(r, r.randint(100, 156), B64URL)
    return "sk-" + _pick(r, 48, ALNUM)


def gh_token(r: Random) -> str:
    if r.random() < 0.7:
        return r.choice(("ghp_", "gho_", "ghs_")) + _pick(r, 36, ALNUM)
    return "github_pat_" + _pick(r, 22, ALNUM) + "_" + _pick(r, 59, ALNUM)


def slack_token(r: Random) -> str:
    if r.random() < 0.5:
        return f"xoxb-{_pick(r, 12)}-{_pick(r, 13)}-{_pick(r, 24, ALNUM)}"
    return f"xoxp-{_pick(r, 12)}-{_pick(r, 12)}-{_pick(r, 13)}-{_pick(r, 32, HEX)}"


def aws_key(r: Random) -> str:
    return "AKIA" + _pick(r, 16, UPPER + DIGITS)


def _b64url(obj: object) -> str:
    raw = json.dumps(obj, separators=(",", ":")).encode()
    return base64.urlsafe_b64encode(raw).decode().rstrip("=")


def bearer(r: Random) -> str:
    """A JWT, an opaque token or an API key, as sent after ``Authorization: Bearer``."""
    if (k := r.random()) < 0.5:
        iat = r.randint(1_600_000_000, 1_760_000_000)
        claims = {"sub": str(r.randint(10**5, 10**9)), "iat": iat, "exp": iat + 3600}
        header = {"alg": r.choice(("HS256", "RS256")), "typ": "JWT"}
        return f"{_b64url(header)}.{_b64url(claims)}.{_pick(r, r.choice((43, 86)), B64URL)}"
    return _pick(r, r.randint(32, 64), B64URL) if k < 0.9 else r.choice((ant_key, openai_key))(r)


DER_HEADS = {  # how real keys' DER starts, so that the base64 starts the way real ones do
    "RSA PRIVATE KEY": bytes.fromhex("308204a40201000282010100"),
    "PRIVATE KEY": bytes.fromhex("308204be020100300d06092a864886f70d0101010500"),
    "EC PRIVATE KEY": bytes.fromhex("30770201010420"),
    "OPENSSH PRIVATE KEY": b"openssh-key-v1\x00",
    "PUBLIC KEY": bytes.fromhex("30820122300d06092a864886f70d01010105000382010f00"),
    "CERTIFICATE": bytes.fromhex("308203"),
}
PRIVATE_KINDS = ("RSA PRIVATE KEY", "PRIVATE KEY", "EC PRIVATE KEY", "OPENSSH PRIVATE KEY")


def armor(r: Random, kind: str, sep: str = "\n") -> str:
    size = 112 if kind.startswith("EC") else r.randint(250, 800)
    b64 = base64.b64encode(DER_HEADS[kind] + r.randbytes(size)).decode()
    width = 70 if kind.startswith("OPENSSH") else 64
    lines = [b64[i : i + width] for i in range(0, len(b64), width)]
    return sep.join([f"-----BEGIN {kind}-----", *lines, f"-----END {kind}-----"])


# --- Unlabelled values: hard negatives and filler ------------------------------------------------


def order(r: Random) -> str:
    """10-20 digits, never shaped like a CN mobile, a card or a CN ID ({LUHN16} is the card one)."""
    while True:
        s = str(r.randint(1, 9)) + _pick(r, r.randint(9, 19))
        cn_like = len(s) == 18 and _cnid_date_ok(s) and cnid_check(s[:17]) == s[17]
        if not (_card_like(s) or cn_like or (len(s) == 11 and s[0] == "1")):
            return s


MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def _when(r: Random) -> dt.datetime:
    return dt.datetime(2019, 1, 1) + dt.timedelta(seconds=r.randrange(6 * 365 * 86400))


def date(r: Random) -> str:
    d, k = _when(r), r.random()
    if k < 0.7:
        return d.strftime("%Y-%m-%d")
    return d.strftime("%Y/%m/%d") if k < 0.85 else f"{d.day} {MONTHS[d.month - 1]} {d.year}"


def timestamp(r: Random) -> str:
    d, ms = _when(r), _pick(r, 3)
    return r.choice(
        (f"{d:%Y-%m-%dT%H:%M:%SZ}", f"{d:%Y-%m-%d %H:%M:%S}", f"{d:%Y-%m-%d %H:%M:%S},{ms}",
         f"{d:%Y-%m-%dT%H:%M:%S}.{ms}+08:00")
    )  # fmt: skip


def rfc_date(r: Random) -> str:
    d = _when(r)
    day = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")[d.weekday()]
    return f"{day}, {d.day:02d} {MONTHS[d.month - 1]} {d:%Y %H:%M:%S} +0800"


def version(r: Random) -> str:
    a, b, c = r.randint(0, 12), r.randint(0, 40), r.randint(0, 30)
    return r.choice((f"{a}.{b}.{c}", f"v{a}.{b}.{c}", f"{a}.{b}", f"{a}.{b}.{c}-rc.{c % 5 + 1}"))


def version4(r: Random) -> str:
    """Four numbers: most are also a valid IPv4 address, so only the word before tells."""
    last = r.randint(0, 30) if r.random() < 0.6 else r.randint(256, 9999)
    return f"{r.randint(1, 12)}.{r.randint(0, 20)}.{r.randint(0, 20)}.{last}"


def bad_ip(r: Random) -> str:
    a, b, c, d = r.randint(1, 223), r.randrange(256), r.randrange(256), r.randint(256, 999)
    return r.choice(
        (f"{d}.{b}.{c}.{a}", f"{a}.{b}.{c}.{d}", f"{a}.{b}.{c}.{b}.{c}", f"{a}.{b}.{c}.")
    )


def isbn(r: Random) -> str:
    b = "978" + _pick(r, 9)
    c = -sum(int(d) * (3 if i % 2 else 1) for i, d in enumerate(b)) % 10
    return r.choice((f"{b}{c}", f"{b[:3]}-{b[3]}-{b[4:7]}-{b[7:]}-{c}"))


def _user(r: Random) -> str:
    if r.random() < 0.5:
        return f"{r.choice(W['PYSUR'])}_{r.choice(W['PYGIVEN'])}"
    return f"{r.choice(W['FIRST']).lower()}{r.randint(1, 99)}"


def _choice(words: list[str]) -> Gen:
    return lambda r: r.choice(words)


def _const(f: Callable[..., str], *args: object) -> Gen:
    return lambda r: f(r, *args)


def _num(lo: int, hi: int) -> Gen:
    return lambda r: str(r.randint(lo, hi))


def _hex(n: int, alphabet: str = HEX) -> Gen:
    return lambda r: _pick(r, n, alphabet)


LABELLED: dict[str, tuple[str, Gen]] = {
    "CARD": ("CREDIT_CARD", card),
    "SSN": ("US_SSN", lambda r: ssn(r, "-" if r.random() < 0.75 else " ")),
    "SSNC": ("US_SSN", _const(ssn, "")),  # compact: only ever right after "SSN" and the like
    "EMAIL": ("EMAIL", email),
    "CNEMAIL": ("EMAIL", _const(email, True)),
    "PHONE": ("PHONE", phone),
    "USPHONE": ("PHONE", us_phone),
    "CNPHONE": ("PHONE", cn_phone),
    "INTLPHONE": ("PHONE", intl_phone),
    "CNID": ("CN_ID", cn_id),
    "IBAN": ("IBAN", iban),
    "IP": ("IP_ADDRESS", lambda r: ip4(r) if r.random() < 0.7 else ip6(r)),
    "IP4": ("IP_ADDRESS", ip4),
    "IP6": ("IP_ADDRESS", ip6),
    "SECRET": (
        "SECRET",
        lambda r: r.choice((ant_key, openai_key, aws_key, gh_token, slack_token))(r),
    ),
    "ANTKEY": ("SECRET", ant_key),
    "OAIKEY": ("SECRET", openai_key),
    "AWSKEY": ("SECRET", aws_key),
    "GHTOKEN": ("SECRET", gh_token),
    "SLACKTOKEN": ("SECRET", slack_token),
    "BEARER": ("SECRET", bearer),
    "PEM": ("SECRET", lambda r: armor(r, r.choice(PRIVATE_KINDS))),
    "PEMJSON": ("SECRET", _const(armor, "PRIVATE KEY", "\\n")),  # inside a JSON string
}
UNLABELLED: dict[str, Gen] = {
    "ORDER": order,
    "LUHN16": _const(card_number, 16),  # a card-like number, always with a context word
    "BADID": bad_cn_id,
    "BADSSN": bad_ssn,
    "BADIP": bad_ip,
    "PUBKEY": lambda r: armor(r, r.choice(("PUBLIC KEY", "CERTIFICATE"))),
    "TS": _num(1_500_000_000, 1_790_000_000),
    "TSMS": _num(1_500_000_000_000, 1_790_000_000_000),
    "DATE": date,
    "DATETIME": timestamp,
    "RFCDATE": rfc_date,
    "CLF": lambda r: f"{r.randint(10, 28)}/{r.choice(MONTHS)}/2024:{_when(r):%H:%M:%S} +0000",
    "MMYY": lambda r: f"{r.randint(1, 12):02d}/{r.randint(25, 31)}",
    "VER": version,
    "VER4": version4,
    "UUID": lambda r: str(uuid.UUID(int=r.getrandbits(128), version=4)),
    "MD5": _hex(32),
    "SHA1": _hex(40),
    "SHA256": _hex(64),
    "GITSHA": _hex(40),
    "SHORTSHA": _hex(7),
    "HEX24": _hex(24, ALNUM),
    "MONEY": lambda r: f"{r.randint(1000, 9_999_999):,}.{r.randrange(100):02d}",
    "MONEYPLAIN": lambda r: f"{r.randint(1, 99999)}.{r.randrange(100):02d}",
    "PRICE": lambda r: r.choice(("$", "€", "£", "¥", "USD ")) + f"{r.randint(5, 20000):,}.99",
    "SECTION": lambda r: ".".join(str(r.randint(1, 14)) for _ in range(r.randint(2, 3))),
    "PORT": lambda r: str(r.choice((80, 443, 3000, 5432, 6379, 8080, r.randint(1024, 65535)))),
    "ISBN": isbn,
    "SKU": lambda r: f"{r.choice(('SKU', 'PN', 'ART'))}-{_pick(r, 5)}-{_pick(r, 2, UPPER)}",
    "N": _num(1, 99),
    "N4": _num(1000, 9999),
    "N6": _num(100000, 999999),
    "MS": _num(1, 4999),
    "PATH": lambda r: r.choice(("/v1/messages/", "/api/orders/", "/v1/users/")) + _pick(r, 5),
    "HOST": lambda r: f"{r.choice(W['SVC'])}-{r.randint(1, 40)}.prod.internal",
    "USER": _user,
    "NAME": lambda r: f"{r.choice(W['FIRST'])} {r.choice(W['LAST'])}",
    "CNNAME": lambda r: r.choice(W["CNSUR"]) + "".join(r.choices(W["CNGIVEN"], k=r.randint(1, 2))),
    "COMPANY": lambda r: f"{r.choice(W['CO'])} {r.choice(W['COSUFFIX'])}",
    "CNCOMPANY": lambda r: "".join(r.choice(W[k]) for k in ("CNCITY", "CNBRAND", "CNKIND")),
    **{key: _choice(words) for key, words in W.items()},
}
SLOTS: dict[str, tuple[Gen, str | None]] = {k: (g, None) for k, g in UNLABELLED.items()}
SLOTS |= {k: (g, entity) for k, (entity, g) in LABELLED.items()}

# --- Templates: "@@ genre lang part" sections; a "*" section holds multi-line templates split by
# "--" lines, others one template a line. {KEY} is a slot, {a|b} picks one of the alternatives.

TEMPLATES = r'''
@@ contract en head
MASTER SERVICES AGREEMENT (Contract No. {ORDER})
EMPLOYMENT AGREEMENT between {COMPANY} and {NAME}
MUTUAL NON-DISCLOSURE AGREEMENT, Rev. {VER}, effective {DATE}
COMMERCIAL LEASE AGREEMENT, reference {SKU}
Please review this contract draft and flag any {risky|unusual|one-sided} clauses:
{Summarize|Translate into Chinese|Simplify} the following agreement for a non-lawyer.
@@ contract en body
{SECTION} Parties. This Agreement is made on {DATE} between {COMPANY} and {COMPANY}.
{SECTION} Payment. Invoices are payable within {N} days to IBAN {IBAN} (BIC {BIC}).
{SECTION} Payment. The Customer authorises recurring charges to card {CARD}, expiry {MMYY}.
{SECTION} Fees. The annual fee is USD {MONEY}, quoted against purchase order {ORDER}.
{SECTION} Notices. Notices shall be sent to {NAME} at {EMAIL} or by phone to {USPHONE}.
{SECTION} Notices. Notices to the Employee go to {EMAIL}{, with a copy to | or }{EMAIL}.
The Employee, {NAME} (SSN {SSN}), shall report to the {TITLE} of {COMPANY}.
{SECTION} Tax. For Form W-9 purposes the Contractor's social security number is {SSNC}.
{SECTION} Term. This Agreement supersedes version {VER} and Schedule {SECTION} dated {DATE}.
{SECTION} Hosting. The Services run on hosts {IP4} and {IP4}; changes need {N} days' notice.
{SECTION} Hosting. The Provider shall allow the Customer's egress range {IP6}/64.
{SECTION} Credentials. Access key {AWSKEY} is issued to the Customer and rotated every {N} days.
{SECTION} Deposit. A deposit of {PRICE} will be charged to the card ending in {N4}.
{SECTION} Royalties. The Work (ISBN {ISBN}) earns {N}% of net receipts, paid on {DATE}.
{SECTION} Liability. Neither party's aggregate liability shall exceed {PRICE}.
{SECTION} Goods. Item {SKU} is supplied at {PRICE} per unit; tracking number {ORDER}.
{SECTION} Invoicing. Invoice {LUHN16} dated {DATE} covers the first {N} months.
{SECTION} Personnel. Emergency contact: {NAME}, {PHONE}, {EMAIL}.
{SECTION} Governing law. This Agreement is governed by the laws of {STATE}.
{SECTION} Confidentiality. Each party shall protect the other's Confidential Information.
{SECTION} Termination. Either party may terminate on {N} days' notice under Section {SECTION}.
{SECTION} Bank details. Account holder: {NAME}; IBAN: {IBAN}; reference: {ORDER}.
{SECTION} Identification. Tenant: {NAME}, SSN {SSN}, date of birth {DATE}.
{SECTION} Support. Write to {EMAIL} or call {PHONE}, quoting contract number {ORDER}.
{SECTION} Records. Data created after Unix time {TS} is retained for {N} years.
{SECTION} Claims. Claim reference {BADSSN} was settled on {DATE} for {PRICE}.
{SECTION} Software. Licensee may install release {VER} (build {SHORTSHA}) on {N} servers.
{SECTION} Reporting. Usage reports are signed with SHA-256 digest {SHA256}.
{SECTION} Price. The total of {MONEY} is payable in {N} instalments of {PRICE}.
{SECTION} Access. The API credential {SECRET} is Confidential Information of the Customer.
@@ contract en tail
IN WITNESS WHEREOF, signed on {DATE} by {NAME} for {COMPANY}.
Signed: {NAME}, {TITLE}. Contact: {EMAIL}.
(Contract {ORDER}, page {1|2|3} of {3|4|5})
@@ contract zh head
技术服务合同（合同编号：{ORDER}）
劳动合同书
房屋租赁合同 版本 {VER4}
保密协议（{DATE}修订）
请帮我审阅以下合同条款，指出对乙方不利的地方：
请{总结|翻译|简化}这份合同中双方的主要义务。
@@ contract zh body
第{N}条 甲方：{CNCOMPANY}，法定代表人：{CNNAME}，联系电话：{CNPHONE}。
第{N}条 乙方：{CNNAME}，身份证号码：{CNID}，手机{CNPHONE}，电子邮箱：{CNEMAIL}。
第{N}条 乙方身份证号{CNID}，住址：{CNCITY}市{中山路|人民路|解放路|建国路}{N}号。
第{N}条 合同总金额为人民币{MONEY}元（含税），甲方收到发票号码{ORDER}后{N}日内付款。
第{N}条 乙方同意甲方每月从其银行卡{CARD}中自动扣收服务费。
第{N}条 扣款账户卡号：{CARD}，持卡人：{CNNAME}。
第{N}条 境外付款请汇至IBAN：{IBAN}，SWIFT代码{BIC}。
第{N}条 甲方服务器地址为{IP4}，如需变更应提前{N}日书面通知乙方。
第{N}条 本合同自{DATE}起生效，有效期{N}年，替代版本 {VER} 的全部约定。
第{SECTION}款 保密义务：双方对履行本合同过程中知悉的商业秘密负有保密义务。
第{N}条 押金{PRICE}于{DATE}前支付，收据编号{ORDER}。
第{N}条 订单号{LUHN16}项下货物由乙方负责运输，快递单号{ORDER}。
第{N}条 紧急联系人：{CNNAME}，电话{PHONE}，邮箱：{CNEMAIL}。
第{N}条 违约金为合同总额的{N}%，即人民币{MONEY}元。
第{N}条 流水号{BADID}对应的款项视为首期付款。
第{N}条 乙方提供的API密钥{SECRET}仅限本项目使用，不得转让。
第{N}条 甲方联络邮箱：{EMAIL}，工作日{24|48|72}小时内回复。
第{N}条 乙方社保缴纳基数为{MONEY}元，自{DATE}起执行。
第{N}条 软件授权版本 {VER4}，授权码{UUID}。
@@ contract zh tail
甲方（盖章）：{CNCOMPANY}  乙方（签字）：{CNNAME}  日期：{DATE}
签订地点：{CNCITY}，合同编号{ORDER}，共{2|3|4|5|6}页。
@@ support_chat en head
[{DATETIME}] chat started, session {UUID}
Can you draft a reply to this customer conversation?
Summarize this support chat for the ticket:
@@ support_chat en body
Customer: hi, I was charged twice on my card {CARD} for order #{ORDER}
Customer: the card number is {CARD}, exp {MMYY}
Agent: Thanks for reaching out! Could you confirm the email address on the account?
Customer: sure, it's {EMAIL}
Customer: it should be {EMAIL}, or maybe my work one {EMAIL}
Customer: you can call me at {USPHONE} after 5pm
Customer: my number is {PHONE}
Agent: I can see order {ORDER} shipped on {DATE}; the tracking number is {ORDER}.
Customer: order #{LUHN16} still hasn't arrived
Customer: the invoice number is {LUHN16}, it's on the PDF
Agent: For your security, please don't share full card numbers or SSNs in chat.
Customer: for the background check my SSN is {SSN}
Customer: social security number {SSNC}, DOB {DATE}
Agent: Ticket {UUID} has been escalated to our billing team.
Customer: the app says version {VER} and it crashes right after login
Customer: it's version {VER4} on Windows if that matters
Customer: I'm connecting from {IP}, is that address blocked?
Agent: Your refund of {PRICE} was issued under reference {ORDER} ({N} business days).
Customer: here's my API key {SECRET}, every call returns 401
Agent: Please revoke that key now. Keys look like sk-ant-... and must never be shared.
Customer: I paid by bank transfer from IBAN {IBAN}
Customer: does it work with scikit-learn (sk-learn) {VER}?
Agent: Our records show {N} failed attempts since {DATETIME}.
Customer: my account id is {N6} and the error code is {N4}
Agent: Could you send me the request id from the response headers?
Customer: request-id: req_{HEX24}
Customer: I'm putting a Bearer token in the Authorization header like the docs say
Customer: Authorization: Bearer {BEARER}
Agent: That token has expired; please generate a new one from the dashboard.
Customer: the item was {SKU}, price {PRICE}
Agent: Is there anything else I can help you with today?
Customer: no that's all, thanks!
Customer: I moved, new phone is {PHONE} and email {EMAIL}
Agent: I've updated the contact number to {PHONE}.
Customer: case number {BADSSN} from last week, still no answer
@@ support_chat zh head
[{DATETIME}] 会话开始，会话ID {UUID}
请帮我根据以下聊天记录写一条回复：
@@ support_chat zh body
客户：你好，我的订单号{ORDER}一直没有发货
客服：您好，请提供下单时使用的手机号码。
客户：手机{CNPHONE}
客户：我的电话是{PHONE}
客户：我的银行卡{CARD}被重复扣款了两次
客户：卡号：{CARD}，麻烦帮我查一下
客服：为了保护您的隐私，请不要在对话中发送完整的银行卡号。
客户：身份证号{CNID}，实名认证一直失败
客户：身份证：{CNID}，姓名{CNNAME}
客户：邮箱：{CNEMAIL}。
客户：发到我的邮箱{EMAIL}吧
客服：您的快递单号{ORDER}，预计{DATE}送达。
客户：发票号码{ORDER}，金额{MONEY}元
客户：订单号{LUHN16}，怎么还没到？
客服：退款{PRICE}已原路退回，交易流水号{BADID}。
客户：App版本 {VER}，一登录就闪退
客户：客户端版本 {VER4}，错误码{N4}
客户：我在{CNCITY}，IP是{IP4}，是不是被封了？
客户：API密钥是{SECRET}，一直返回401
客服：请立即作废该密钥，密钥以sk-ant-开头，切勿泄露。
客服：工单{UUID}已升级至二线处理。
客户：商品编号{SKU}，单价{PRICE}
客户：我的账号ID是{N6}
客户：请求头里写的是Authorization: Bearer {BEARER}
客户：好的，谢谢！
客服：请问还有其他可以帮您的吗？
客户：换了新手机号{CNPHONE}，邮箱也改成{CNEMAIL}了
客户：我从IBAN {IBAN}汇的款，{DATE}到账了吗？
@@ server_log en head
Here is the log excerpt from {HOST}, can you find the root cause?
=== {SVC} logs, {DATE} ===
Why does this keep failing?
@@ server_log en body
{DATETIME} INFO  [{SVC}] {METHOD} {PATH} {STATUS} {MS}ms client={IP} req_id={UUID}
{DATETIME} WARN  auth: failed login for {EMAIL} from {IP4} (attempt {N})
{DATETIME} DEBUG http: > Authorization: Bearer {BEARER}
{DATETIME} ERROR payments: charge declined card={CARD} order={ORDER} amount={MONEYPLAIN}
{IP4} - - [{CLF}] "{METHOD} {PATH} HTTP/1.1" {STATUS} {N4} "-" "Mozilla/5.0"
{IP6} - - [{CLF}] "{METHOD} {PATH} HTTP/2" {STATUS} {N4}
ts={TS} level=info msg="user signed up" email={EMAIL} phone="{PHONE}"
{DATETIME} INFO  deploy: rolled out {SVC} {VER} (commit {GITSHA}) to {HOST}
{DATETIME} ERROR db: connection to {IP4}:{PORT} refused
{DATETIME} WARN  config: ignoring invalid upstream address {BADIP}
{DATETIME} DEBUG env: ANTHROPIC_API_KEY={ANTKEY}
{DATETIME} INFO  kyc: verified user={USER} ssn={SSN} score={N}
{DATETIME} WARN  kyc: rejected malformed ssn={BADSSN} for user={USER}
{DATETIME} INFO  export: wrote {N} rows to {PATH}.csv sha256={SHA256}
{DATETIME} INFO  orders: order {ORDER} shipped, tracking {ORDER}
{DATETIME} INFO  orders: invoice {LUHN16} paid in full
{DATETIME} DEBUG cache: hit key=user:{N6} etag={MD5}
{DATETIME} INFO  upstream {HOST} [{IP6}] latency={MS}ms
{DATETIME} ERROR sepa: transfer rejected iban={IBAN} reason=AC01 ref={ORDER}
{DATETIME} WARN  scheduler: job {UUID} timed out (epoch {TS}, started_ms={TSMS})
{DATETIME} INFO  server version {VER4} listening on :{PORT}
{DATETIME} INFO  pid={N4} version={VER} build={SHORTSHA}
{DATETIME} WARN  ratelimit: account={N6} remaining=0 reset={TS}
{DATETIME} DEBUG auth: request without Bearer token rejected ({STATUS})
{DATETIME} ERROR smtp: bounce for {EMAIL}: mailbox full
{DATETIME} INFO  sms: OTP sent to {PHONE} (template {N4})
{DATETIME} WARN  ci: GITHUB_TOKEN={GHTOKEN} printed in build log
{DATETIME} DEBUG slack: posting to #alerts with token {SLACKTOKEN}
{DATETIME} INFO  gc: freed {MONEY} KB in {MS}ms
{DATETIME} ERROR worker: unhandled exception in task {UUID}: KeyError('{USER}')
{DATETIME} INFO  billing: refund {PRICE} for order {ORDER} (session {HEX24})
{DATETIME} INFO  [{SVC}] peer {IP4} connected via {IP4}
{DATETIME} DEBUG headers: {"x-api-key": "{ANTKEY}", "anthropic-version": "2023-06-01"}
{DATETIME} INFO  pip: installed scikit-learn-{VER} (not the sk-learn typo package)
@@ server_log zh head
以下是{HOST}的日志，请帮我分析报错原因：
=== {SVC} 服务日志 {DATE} ===
@@ server_log zh body
{DATETIME} INFO  用户登录成功 user={CNEMAIL} ip={IP4}
{DATETIME} ERROR 支付失败：卡号{CARD}，订单号{ORDER}，金额{MONEY}元
{DATETIME} WARN  实名认证失败，身份证号{CNID}，手机号{CNPHONE}
[{DATETIME}] 短信验证码已发送至{CNPHONE}，有效期{N}分钟
{DATETIME} INFO  发布版本 {VER4} 完成，提交{GITSHA}
{DATETIME} ERROR 无效的IP地址{BADIP}，已忽略
{DATETIME} INFO  快递单号{ORDER}已揽收，发往{CNCITY}
{DATETIME} DEBUG 请求头 Authorization: Bearer {BEARER}
{DATETIME} INFO  订单{LUHN16}支付成功，金额{MONEY}元
{DATETIME} WARN  流水号{BADID}对账不一致，请人工核查
{DATETIME} INFO  用户{CNNAME}绑定银行卡{CARD}
{DATETIME} ERROR 连接数据库{IP4}:{PORT}超时
{DATETIME} INFO  邮件已发送至{CNEMAIL}
{DATETIME} WARN  检测到密钥泄露：{SECRET}
{DATETIME} INFO  任务{UUID}完成，耗时{MS}毫秒，时间戳{TSMS}
{DATETIME} INFO  用户{USER}更新身份证信息：{CNID}
{DATETIME} INFO  发票号码{ORDER}已开具，税额{MONEY}元
{DATETIME} INFO  跨境汇款 IBAN {IBAN} 已受理
{DATETIME} ERROR 缺少Bearer令牌，请求被拒绝
{DATETIME} INFO  客户端{IP6}访问{PATH}，状态码{STATUS}
{DATETIME} INFO  用户{CNNAME}的联系电话变更为{PHONE}
@@ source_code en body *
import anthropic

client = anthropic.Anthropic(api_key="{ANTKEY}")
reply = client.messages.create(model="claude-sonnet-4-5", max_tokens={N4}, messages=msgs)
--
# settings.py (version {VER})
DATABASE_URL = "postgresql://{IP4}:{PORT}/orders"
ADMIN_EMAIL = "{EMAIL}"
SUPPORT_PHONE = "{USPHONE}"
FIRST_ORDER_ID = "{ORDER}"
--
const client = new Anthropic({ apiKey: "{ANTKEY}" });
const res = await fetch(url, { headers: { Authorization: `Bearer ${token}` } });
// order id {ORDER} is not a card number
--
const api = axios.create({
  baseURL: "https://{HOST}",
  headers: { Authorization: "Bearer {BEARER}" },
  timeout: {N4},
});
--
database:
  host: {IP4}
  port: {PORT}
  user: {USER}
  password_sha256: {SHA256}
admin_email: {EMAIL}
image: registry.example.com/{SVC}:{VER}
--
AWS_ACCESS_KEY_ID={AWSKEY}
AWS_DEFAULT_REGION=us-east-1
GITHUB_TOKEN={GHTOKEN}
SLACK_BOT_TOKEN={SLACKTOKEN}
OPENAI_API_KEY={OAIKEY}
RELEASE={VER}
--
{
  "type": "service_account",
  "project_id": "{USER}-prod",
  "private_key_id": "{SHA1}",
  "private_key": "{PEMJSON}",
  "client_email": "{EMAIL}",
  "client_id": "{ORDER}"
}
--
def test_checksum():
    assert luhn_ok("{CARD}")
    assert not luhn_ok("{ORDER}")  # an order number
--
DEPLOY_KEY = """{PEM}"""
--
cat > ~/.ssh/id_deploy <<'EOF'
{PEM}
EOF
--
curl https://api.anthropic.com/v1/messages \
  -H "x-api-key: {ANTKEY}" \
  -H "anthropic-version: 2023-06-01" \
  -H "content-type: application/json"
--
curl -s -H "Authorization: Bearer {BEARER}" https://{HOST}/v1/users/{N6}
--
USERS = [
    {"name": "{NAME}", "email": "{EMAIL}", "ssn": "{SSN}", "card": "{CARD}"},
    {"name": "{NAME}", "email": "{EMAIL}", "phone": "{PHONE}", "ip": "{IP}"},
]
--
# requirements: scikit-learn (not "sk-learn"), numpy
import sklearn
print(sklearn.__version__)  # expect {VER}
--
ALLOWED_HOSTS = ["{IP4}", "{IP6}", "localhost"]
CACHE_TTL = {N4}
BUILD_SHA = "{GITSHA}"
--
# Bearer auth: the token goes in the Authorization header
headers = {"Authorization": f"Bearer {token}", "X-Request-Id": "{UUID}"}
--
PUBLIC_KEY = """{PUBKEY}"""
FINGERPRINT = "{SHA1}"
--
std::map<std::string, int> counts;  // listens on port {PORT}
counts["build-{SHORTSHA}"] = {N4};
--
charge = stripe.Charge.create(amount={N4}, currency="usd", description="Order {ORDER}")
TEST_CARD = "{CARD}"
--
"dependencies": {
  "express": "^{VER}",
  "jsonwebtoken": "{VER}"
}
--
kubectl create secret generic api --from-literal=ANTHROPIC_API_KEY={ANTKEY}
--
iban = "{IBAN}"
assert iban_valid(iban), f"bad IBAN {iban}"
--
SELECT id, email FROM users WHERE created_at > '{DATE}' AND email = '{EMAIL}';
-- invoice {ORDER}, ts {TS}
@@ source_code zh body *
# 测试数据，请勿使用真实身份证号
TEST_USERS = [
    {"姓名": "{CNNAME}", "身份证号": "{CNID}", "手机": "{CNPHONE}"},
]
--
# 生产环境配置（版本 {VER4}）
server:
  host: {IP4}  # 内网地址
  port: {PORT}
alert:
  email: {CNEMAIL}  # 告警邮箱
  phone: "{CNPHONE}"  # 值班手机
--
// 支付回调：订单号 {ORDER}，签名 {SHA256}
const testCard = "{CARD}"; // 测试卡号
--
# 调用 Claude API（密钥已泄露，请立即轮换）
export ANTHROPIC_API_KEY={ANTKEY}
--
# 部署私钥，切勿提交到仓库
cat > deploy_key <<'EOF'
{PEM}
EOF
--
# 数据库连接
DB_HOST = "{IP4}"
DB_PORT = {PORT}
# 负责人：{CNNAME}，电话{CNPHONE}
--
def check_id(id_no: str) -> bool:
    """校验身份证号，例如 {CNID}；流水号 {BADID} 应返回 False。"""
--
# 发票号码 {ORDER}；时间戳 {TS}
INVOICE = {"号码": "{ORDER}", "金额": "{MONEY}", "开票日期": "{DATE}"}
--
# 请求头，Bearer 后面是令牌
headers = {"Authorization": "Bearer {BEARER}"}  # 过期时间 {TSMS}
@@ csv_export en body
customer_id,name,email,phone,signup_date => {N6},{NAME},{EMAIL},{PHONE},{DATE}
order_id,card_number,amount,currency,created_at => {ORDER},{CARD},{MONEYPLAIN},USD,"{DATETIME}"
order_id,tracking_number,status,updated_at => {LUHN16},{ORDER},shipped,{TS}
employee_id,full_name,ssn,department,start_date => {N4},{NAME},{SSN},{DEPT},{DATE}
account,iban,bic,balance => {N6},{IBAN},{BIC},"{MONEY}"
ts,src_ip,dst_ip,port,bytes => {TSMS},{IP},{IP4},{PORT},{N6}
user,email,api_key,created => {USER},{EMAIL},{SECRET},"{DATETIME}"
sku,isbn,price,stock,version => {SKU},{ISBN},{PRICE},{N},{VER}
invoice_no,customer,amount,due => {ORDER},{COMPANY},"{MONEY}",{DATE}
id,md5,commit,released => {UUID},{MD5},{GITSHA},{DATE}
name,phone,email,city => {NAME},{USPHONE},{EMAIL},{CITY}
contact,mobile,reference => {NAME},{INTLPHONE},{ORDER}
@@ csv_export zh body
用户ID,姓名,身份证号,手机号,注册时间 => {N6},{CNNAME},{CNID},{CNPHONE},"{DATETIME}"
订单号,快递单号,金额,下单时间 => {LUHN16},{ORDER},{MONEYPLAIN},"{DATETIME}"
发票号码,购买方,税额,开票日期 => {ORDER},{CNCOMPANY},{MONEYPLAIN},{DATE}
员工编号,姓名,邮箱,手机,部门 => {N4},{CNNAME},{CNEMAIL},{CNPHONE},{CNWORD}
交易流水号,卡号,金额,状态 => {BADID},{CARD},{MONEYPLAIN},成功
时间,来源IP,接口,耗时 => "{DATETIME}",{IP},{PATH},{MS}
商品编号,名称,单价,库存 => {SKU},{CNWORD},{PRICE},{N}
@@ csv_export mixed body
name,id_number,mobile,city => {CNNAME},{CNID},{CNPHONE},{CNCITY}
姓名,email,phone,card => {CNNAME},{EMAIL},{PHONE},{CARD}
user_id,姓名,IBAN,备注 => {N6},{CNNAME},{IBAN},跨境付款
@@ email_ticket en head *
From: {NAME} <{EMAIL}>
To: {EMAIL}
Subject: {Refund request|Problem with my account|Billing question|Urgent: API key leaked}
Date: {RFCDATE}
--
From: {EMAIL}
Subject: {Order not delivered|Change of bank details|Re: your ticket|Fwd: invoice}
--
Ticket #{N6} | Priority: {High|Normal|Urgent} | Opened {DATETIME}
Requester: {NAME} ({EMAIL})
--
Please help me write a polite reply to this email:
@@ email_ticket en body
Hi team,
Hello {FIRST},
I was billed {PRICE} twice on my card {CARD}; please refund one of the charges.
Please update my phone number to {PHONE} and my email to {EMAIL}.
Our payment left IBAN {IBAN} on {DATE} (reference {ORDER}).
The order number is {ORDER} and the tracking number is {ORDER}.
Invoice {LUHN16} is attached for your records.
For the payroll change I need to confirm my SSN: {SSN}.
HR asked for my social security number, it's {SSNC}.
Our server at {IP} started returning errors after we upgraded to version {VER4}.
We accidentally pasted our key {SECRET} in a public repo, can you revoke it?
This private key was committed in {GITSHA} by mistake:\n{PEM}\nPlease advise.
Our app version is {VER} (build {SHORTSHA}); device id {UUID}.
Could you whitelist {IP4} and {IP6} for our office?
You can reach me on {USPHONE} or my mobile {INTLPHONE}.
Thanks for the quick response on ticket {N6}.
The contract reference is {SKU}, signed on {DATE}.
Please don't paste the Bearer token into this thread; use the vault link instead.
Our Slack bot token {SLACKTOKEN} seems to have been rotated and the bot is down.
The amount of {MONEY} matches claim no. {BADSSN}.
I'm available at {PHONE} between {9|10|11}am and {4|5|6}pm.
Our public key for encrypting the export is below (it is safe to share):\n{PUBKEY}
@@ email_ticket en tail *
Best regards,
{NAME}
{COMPANY} | {USPHONE} | {EMAIL}
--
Thanks,
{FIRST}
--
{NAME}
{TITLE}, {COMPANY}
Tel: {PHONE}
@@ email_ticket zh head *
发件人：{CNNAME} <{CNEMAIL}>
收件人：{EMAIL}
主题：{退款申请|账户无法登录|发票问题|密钥泄露|订单未收到}
日期：{DATETIME}
--
工单编号：{N6}  优先级：{高|中|低|紧急}  创建时间：{DATETIME}
提交人：{CNNAME}（{CNEMAIL}）
--
请帮我回复下面这封邮件：
@@ email_ticket zh body
您好，
{CNNAME}您好：
我的银行卡{CARD}被重复扣款{PRICE}，请尽快退款。
请将我的联系电话更新为{CNPHONE}，邮箱改为{CNEMAIL}。
订单号{ORDER}，快递单号{ORDER}，至今未收到货。
发票号码{ORDER}，开票金额{MONEY}元，请核对。
附件是订单{LUHN16}的付款凭证。
我的身份证号是{CNID}，请协助完成实名认证。
身份证号码：{CNID}，姓名：{CNNAME}。
我们的服务器{IP4}在升级到版本 {VER4} 之后一直报错。
不小心把密钥{SECRET}提交到了公开仓库，请帮忙作废。
境外付款已从IBAN {IBAN}汇出，汇款日期{DATE}。
交易流水号{BADID}显示失败，但钱已扣除。
如需联系请拨打{PHONE}。
感谢您对工单{N6}的快速处理。
合同编号{SKU}，签订日期{DATE}。
这是我们的证书，可以公开：\n{PUBKEY}
@@ email_ticket zh tail *
此致
敬礼
{CNNAME}
{CNCOMPANY}  电话：{CNPHONE}
--
{CNNAME}
手机：{CNPHONE}  邮箱：{CNEMAIL}
'''


def _parse_templates(block: str) -> dict[tuple[str, str, str], list[str]]:
    pools: dict[tuple[str, str, str], list[str]] = {}
    for section in block.split("\n@@ ")[1:]:
        header, _, body = section.partition("\n")
        genre, lang, part, *multi = header.split()
        if multi:
            pools[genre, lang, part] = body.strip("\n").split("\n--\n")
        else:
            pools[genre, lang, part] = [t.replace("\\n", "\n") for t in body.splitlines() if t]
    return pools


POOLS = _parse_templates(TEMPLATES)
_SLOT = re.compile(r"\{([^{}]*)\}")
SHAPE = {  # how many body items a document has, and how they are joined
    "contract": (2, 10, "\n\n"),
    "support_chat": (2, 14, "\n"),
    "server_log": (3, 24, "\n"),
    "source_code": (1, 3, "\n\n"),
    "csv_export": (2, 25, "\n"),
    "email_ticket": (2, 7, "\n"),
}


Piece = str | list[str] | tuple[Gen, str | None]  # literal text, alternatives, or a slot


@functools.cache
def _compile(template: str) -> list[Piece]:
    pieces: list[Piece] = []
    pos = 0
    for m in _SLOT.finditer(template):
        pieces.append(template[pos : m.start()])
        pos, key = m.end(), m.group(1)
        if key in SLOTS:
            pieces.append(SLOTS[key])
        elif "|" in key:
            pieces.append(key.split("|"))
        elif re.fullmatch(r"[A-Z][A-Z0-9_]*", key):
            raise KeyError(f"unknown slot {key!r} in template {template!r}")
        else:
            pieces.append(m.group(0))  # a literal brace group in code
    pieces.append(template[pos:])
    return [p for p in pieces if p != ""]


class _Builder:
    def __init__(self, r: Random) -> None:
        self.r, self.parts, self.spans, self.size = r, list[str](), list[Span](), 0

    def add(self, text: str, entity: str | None = None) -> None:
        if entity is not None:
            self.spans.append((self.size, self.size + len(text), entity))
        self.parts.append(text)
        self.size += len(text)

    def render(self, template: str) -> None:
        for piece in _compile(template):
            if isinstance(piece, str):
                self.add(piece)
            elif isinstance(piece, list):
                self.add(self.r.choice(piece))
            else:
                self.add(piece[0](self.r), piece[1])


def _document(r: Random, doc_id: str, genre: str, lang: str) -> Document:
    langs = [lang] if (genre, lang, "body") in POOLS else r.sample(["en", "zh"], 2)
    lo, hi, sep = SHAPE[genre]
    single = lang != "mixed" and r.random() < 0.08  # a one-sentence prompt
    n = 1 if single else max(r.randint(lo, hi), 2 if lang == "mixed" else 1)
    if genre == "csv_export":
        header, row = r.choice(POOLS[genre, r.choice(langs), "body"]).split(" => ")
        items = [header] + [row] * n
    else:
        decks = {
            x: r.sample(POOLS[genre, x, "body"], k=len(POOLS[genre, x, "body"])) for x in langs
        }
        items = []  # no template twice in a document while there are unused ones
        for i in range(n):
            x = langs[i % len(langs)] if i < 2 else r.choice(langs)
            items.append(decks[x].pop() if decks[x] else r.choice(POOLS[genre, x, "body"]))
        if single and "{" not in items[0]:  # a one-line prompt says something
            items = [r.choice([t for t in POOLS[genre, langs[0], "body"] if "{" in t])]
        for part, p in (("head", 0.75), ("tail", 0.6)):
            pool = POOLS.get((genre, r.choice(langs), part))
            if pool and not single and r.random() < p:
                items.insert(0 if part == "head" else len(items), r.choice(pool))
    b = _Builder(r)
    for i, item in enumerate(items):
        if i:
            b.add(sep)
        b.render(item)
    return Document(doc_id, lang, genre, "".join(b.parts), tuple(b.spans))


def generate(seed: int = SEED, n_docs: int = N_DOCS) -> list[Document]:
    r = Random(seed)
    docs = []
    for i in range(n_docs):
        genre = GENRES[i % len(GENRES)]
        lang = r.choices(LANGS, weights=(45, 40, 15))[0]
        docs.append(_document(r, f"{genre}-{lang}-{i:04d}", genre, lang))
    return docs


def dumps(documents: Sequence[Document]) -> str:
    rows = ({"id": d.id, "lang": d.lang, "genre": d.genre, "text": d.text,
             "spans": [list(s) for s in d.spans]} for d in documents)  # fmt: skip
    return "".join(json.dumps(row, ensure_ascii=False) + "\n" for row in rows)


def load_corpus(path: Path | None = None) -> list[Document]:
    docs = []
    for line in (path or CORPUS_PATH).read_text(encoding="utf-8").splitlines():
        row = json.loads(line)
        spans = tuple((int(s), int(e), str(t)) for s, e, t in row["spans"])
        docs.append(Document(row["id"], row["lang"], row["genre"], row["text"], spans))
    return docs


# --- Evaluation --------------------------------------------------------------------------------


@dataclass
class EntityScore:
    tp: int = 0
    fp: int = 0
    fn: int = 0
    extra: int = 0  # findings overlapping only gold spans already matched: neither tp nor fp

    @property
    def gold(self) -> int:
        return self.tp + self.fn

    @property
    def precision(self) -> float:
        """tp / (tp + fp); 1.0 when nothing was found."""
        return self.tp / (self.tp + self.fp) if self.tp + self.fp else 1.0

    @property
    def recall(self) -> float:
        """tp / gold; 1.0 when there is no gold span of this type."""
        return self.tp / self.gold if self.gold else 1.0


@dataclass
class Report:
    per_entity: dict[str, EntityScore] = field(default_factory=dict)
    words: int = 0  # non-sensitive words: outside every gold span
    words_intact: int = 0  # of those, the ones no finding overlaps

    @property
    def intact(self) -> float:
        return self.words_intact / self.words if self.words else 1.0

    @property
    def overall(self) -> EntityScore:
        scores = self.per_entity.values()
        return EntityScore(
            *(sum(getattr(s, k) for s in scores) for k in ("tp", "fp", "fn", "extra"))
        )

    def table(self) -> str:
        lines = ["| entity | gold | precision | recall |", "|---|---:|---:|---:|"]
        rows = [*self.per_entity.items(), ("all", self.overall)]
        for entity, s in rows:  # "-" where a ratio has nothing to count
            precision = f"{s.precision:.3f}" if s.tp + s.fp else "-"
            recall = f"{s.recall:.3f}" if s.gold else "-"
            lines.append(f"| {entity} | {s.gold} | {precision} | {recall} |")
        return "\n".join(lines) + "\n"


_CJK = "\u3400-\u4dbf\u4e00-\u9fff\uf900-\ufaff"
_WORD = re.compile(f"[{_CJK}]|[^\\s{_CJK}]+")


def evaluate(find: Finder, documents: Sequence[Document]) -> Report:
    """Score ``find`` against the gold spans of ``documents``.

    Findings are taken in (start, end) order. A finding is a true positive when it overlaps a
    not-yet-matched gold span of its type (each gold span is matched at most once), a false positive
    when it overlaps no gold span of its type (so any finding of a type the document has no gold
    span of); one that overlaps only already-matched spans of its type (a fragment or a duplicate)
    is counted as ``extra``, neither. Unmatched gold spans are false negatives. ``intact`` is the
    share of words outside every gold span (whitespace-separated; each CJK character a word) that
    no finding overlaps.
    """
    report = Report({e: EntityScore() for e in ENTITIES})
    scores = report.per_entity
    for doc in documents:
        findings = sorted(find(doc.text))
        matched = [False] * len(doc.spans)
        hit = bytearray(len(doc.text) + 1)
        by_type: dict[str, list[tuple[int, int, int]]] = {}
        for i, (start, end, entity) in enumerate(doc.spans):
            by_type.setdefault(entity, []).append((i, start, end))
        for start, end, entity in findings:
            if (score := scores.get(entity)) is None:
                score = scores[entity] = EntityScore()
            start, end = max(0, start), min(end, len(doc.text))
            hit[start:end] = b"\x01" * max(0, end - start)
            same = [i for i, s, e in by_type.get(entity, ()) if start < e and s < end]
            free = [i for i in same if not matched[i]]
            if free:
                matched[free[0]] = True
                score.tp += 1
            elif same:
                score.extra += 1
            else:
                score.fp += 1
        gold = bytearray(len(doc.text) + 1)
        for (start, end, entity), ok in zip(doc.spans, matched, strict=True):
            gold[start:end] = b"\x01" * (end - start)
            report.per_entity.setdefault(entity, EntityScore()).fn += not ok
        for m in _WORD.finditer(doc.text):
            if gold.find(1, m.start(), m.end()) < 0:
                report.words += 1
                report.words_intact += hit.find(1, m.start(), m.end()) < 0
    return report


_BASELINE = re.compile(
    r"(?:\b|^)(\d{4}[-\.]?\d{4}[-\.]?\d{4}[-\.]?\d{4}|\d{3}-?\d{2}-?\d{4})(?:\b|$)"
)


def baseline_find(text: str) -> Iterator[tuple[int, int, str]]:
    """The design note's regex: a 16-digit match is a CREDIT_CARD, a 9-digit one a US_SSN."""
    for m in _BASELINE.finditer(text):
        digits = sum(c.isdigit() for c in m.group(1))
        yield m.start(1), m.end(1), "CREDIT_CARD" if digits == 16 else "US_SSN"


def main() -> None:
    docs = generate()
    data = dumps(docs).encode()
    CORPUS_PATH.write_bytes(data)
    counts = {e: sum(s[2] == e for d in docs for s in d.spans) for e in ENTITIES}
    print(f"{len(docs)} documents, {len(data)} bytes -> {CORPUS_PATH}")
    print(f"spans per entity: {counts}")
    print(evaluate(baseline_find, docs).table())


if __name__ == "__main__":
    main()
