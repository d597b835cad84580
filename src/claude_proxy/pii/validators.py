"""Checks that a candidate is what its pattern suggests: checksums, issuer ranges, dates.

A pattern alone flags every 16-digit order number as a card. These checks turn a
shape into a finding: the Luhn digit and issuer ranges of payment cards, the rules
the SSA never issues, the ISO 7064 check character and birth date of a Chinese
resident ID, an IBAN's mod-97 check and country length, a phone number's plan.

Each takes the candidate without separators (``compact``) and never raises for bad
input: it answers False.

python-stdnum has most of these, at 8-54 us a check here against 1-3 us for these few
lines (measured with timeit on one value each); candidates are rare but a CSV of
numbers is not, so the arithmetic is ours. Phone numbering plans are real data that
change: those come from ``phonenumbers`` (45-58 us a check, only for phone-shaped
candidates).
"""

from __future__ import annotations

import datetime
import ipaddress
from collections import OrderedDict

__all__ = [
    "PhoneRanges",
    "card_issuer",
    "compact",
    "is_cn_id",
    "is_iban",
    "is_ipv4",
    "is_ipv6",
    "is_phone",
    "is_us_ssn",
    "luhn_ok",
]

_SEPARATORS = str.maketrans("", "", " -.()\u00a0")


def compact(value: str) -> str:
    """The value without spaces, dashes, dots and parentheses."""
    return value.translate(_SEPARATORS)


def luhn_ok(digits: str) -> bool:
    total = 0
    for position, char in enumerate(reversed(digits)):
        digit = ord(char) - 48
        if position % 2:
            digit *= 2
            if digit > 9:
                digit -= 9
        total += digit
    return total % 10 == 0


# (first digits low, high, allowed lengths): the ranges networks issue today.
_ISSUERS: tuple[tuple[str, int, int, frozenset[int]], ...] = (
    ("visa", 4, 4, frozenset({13, 16, 19})),
    ("mastercard", 51, 55, frozenset({16})),
    ("mastercard", 2221, 2720, frozenset({16})),
    ("amex", 34, 34, frozenset({15})),
    ("amex", 37, 37, frozenset({15})),
    ("discover", 6011, 6011, frozenset({16, 17, 18, 19})),
    ("discover", 644, 649, frozenset({16, 17, 18, 19})),
    ("discover", 65, 65, frozenset({16, 17, 18, 19})),
    ("jcb", 3528, 3589, frozenset({16, 17, 18, 19})),
    ("diners", 36, 36, frozenset({14, 15, 16, 17, 18, 19})),
    ("diners", 300, 305, frozenset({14, 15, 16, 17, 18, 19})),
    ("diners", 38, 39, frozenset({14, 15, 16, 17, 18, 19})),
    ("unionpay", 62, 62, frozenset({16, 17, 18, 19})),
    ("unionpay", 81, 81, frozenset({16, 17, 18, 19})),
    ("maestro", 50, 50, frozenset({12, 13, 14, 15, 16, 17, 18, 19})),
    ("maestro", 56, 58, frozenset({12, 13, 14, 15, 16, 17, 18, 19})),
    ("maestro", 67, 67, frozenset({12, 13, 14, 15, 16, 17, 18, 19})),
    ("mir", 2200, 2204, frozenset({16, 17, 18, 19})),
)


_ISSUER_WIDTHS = tuple(
    (name, low, high, len(str(low)), lengths) for name, low, high, lengths in _ISSUERS
)


def card_issuer(digits: str) -> str | None:
    """The network of a Luhn-valid card number in an issued range, else None."""
    if not 12 <= len(digits) <= 19 or not digits.isdigit():
        return None
    prefixes = (0, int(digits[0]), int(digits[:2]), int(digits[:3]), int(digits[:4]))
    length = len(digits)
    for name, low, high, width, lengths in _ISSUER_WIDTHS:
        if low <= prefixes[width] <= high and length in lengths:
            return name if luhn_ok(digits) else None
    return None


def is_us_ssn(digits: str) -> bool:
    """Area 001-899 but 666, group 01-99, serial 0001-9999 (the SSA issues no others),
    and none of the numbers published in advertising."""
    if len(digits) != 9 or not digits.isdigit():
        return False
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in ("000", "666") or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return digits not in _ADVERTISED_SSNS


_ADVERTISED_SSNS = frozenset({"078051120", "219099999", "457555462"})

_CN_WEIGHTS = (7, 9, 10, 5, 8, 4, 2, 1, 6, 3, 7, 9, 10, 5, 8, 4, 2)
_CN_CHECK = "10X98765432"
# First two digits of the region code: the provinces, municipalities and regions.
_CN_PROVINCES = frozenset(
    {11, 12, 13, 14, 15, 21, 22, 23, 31, 32, 33, 34, 35, 36, 37, 41, 42, 43, 44, 45, 46}
    | {50, 51, 52, 53, 54, 61, 62, 63, 64, 65, 71, 81, 82, 83}
)


def is_cn_id(value: str) -> bool:
    """An 18-character resident ID: province, a real birth date, the MOD 11-2 check."""
    if len(value) != 18 or not value[:17].isdigit():
        return False
    if int(value[:2]) not in _CN_PROVINCES:
        return False
    try:
        born = datetime.date(int(value[6:10]), int(value[10:12]), int(value[12:14]))
    except ValueError:
        return False
    if not 1900 <= born.year <= datetime.date.today().year:
        return False
    total = sum(int(value[i]) * _CN_WEIGHTS[i] for i in range(17))
    return _CN_CHECK[total % 11] == value[17].upper()


# ISO 13616 lengths of the countries that issue IBANs.
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22,
    "BH": 22, "BR": 29, "BY": 28, "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22,
    "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24, "FI": 18, "FO": 18, "FR": 27,
    "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21, "HU": 28,
    "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20,
    "LB": 28, "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24,
    "ME": 22, "MK": 19, "MR": 27, "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24,
    "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24, "RS": 22, "SA": 24, "SC": 31,
    "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23, "TN": 24,
    "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def is_iban(value: str) -> bool:
    value = value.upper()
    if _IBAN_LENGTHS.get(value[:2]) != len(value) or not value.isalnum():
        return False
    rearranged = value[4:] + value[:4]
    number = "".join(str(int(char, 36)) for char in rearranged)
    return int(number) % 97 == 1


def is_ipv4(value: str) -> bool:
    parts = value.split(".")
    if len(parts) != 4:
        return False
    for part in parts:
        if not part.isdigit() or int(part) > 255 or (len(part) > 1 and part[0] == "0"):
            return False
    return True


def is_ipv6(value: str) -> bool:
    try:
        ipaddress.IPv6Address(value)
    except ValueError:
        return False
    groups = [group for group in value.split(":") if group]
    # "a::b" or "Face::Add" in code and times like "12::30" parse as addresses too: ask
    # for the look of a real one: a digit, no group in mixed case, and three groups or
    # one of four hex digits (as in fe80::1).
    if not any(char.isdigit() for char in value):
        return False
    if any(not (group.islower() or group.isupper() or group.isdigit()) for group in groups):
        return False
    return len(groups) >= 3 or any(len(group) == 4 for group in groups)


def is_phone(value: str, region: str | None) -> bool:
    """A number valid in its plan; ``region`` for national formats (``"US"``, ``"CN"``).

    ~100 us a call: ``PhoneRanges`` caches the answer by number range."""
    import phonenumbers  # imported on first use: 30 ms, only for gateways that scan

    try:
        number = phonenumbers.parse(value, region)
    except phonenumbers.NumberParseException:
        return False
    return bool(phonenumbers.is_valid_number(number))


class PhoneRanges:
    """``is_phone`` answers, remembered by number range (bounded, least recent out).

    Plans decide validity by a number's length and leading digits (area code and
    exchange, a mobile range), not by its last four: keyed by those, the cache holds no
    whole number, and a log of a thousand numbers costs one library call per range."""

    def __init__(self, size: int = 4096, budget: int = 2000) -> None:
        self._size = size
        self._known: OrderedDict[tuple[str, int, str | None], bool] = OrderedDict()
        # Library calls this detector may still make; past them an unknown range counts
        # as valid (masked): text crafted to cost a call per number cannot stall the
        # gateway, and over-redaction is the safe way to be wrong.
        self._budget = budget

    def valid(self, value: str, region: str | None) -> bool:
        digits = value.translate(_PHONE_PUNCTUATION)
        if len(digits) < 8 or not digits.lstrip("+").isdigit():
            return False  # no plan has numbers that short
        key = (digits[:-4], len(digits), region)
        known = self._known.get(key)
        if known is None:
            if self._budget <= 0:
                return True
            self._budget -= 1
            known = self._known[key] = is_phone(value, region)
            if len(self._known) > self._size:
                self._known.popitem(last=False)
        else:
            self._known.move_to_end(key)
        return known


_PHONE_PUNCTUATION = str.maketrans(dict.fromkeys(" -.()\u00a0"))
