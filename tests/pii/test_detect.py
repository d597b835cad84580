"""The detectors on the cases the design note's regex gets wrong, and on hard negatives."""

from __future__ import annotations

import re
import time

import pytest

from claude_proxy.pii import ENTITIES, CustomPattern, Detector
from claude_proxy.pii.validators import PhoneRanges, card_issuer, is_cn_id, is_iban, is_us_ssn

DETECTOR = Detector(ENTITIES)


def found(text: str) -> list[tuple[str, str]]:
    return [(f.entity, text[f.start : f.end]) for f in DETECTOR.find(text)]


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("card 4111 1111 1111 1111 ok", ("CREDIT_CARD", "4111 1111 1111 1111")),
        ("卡号6222021234567890128。", ("CREDIT_CARD", "6222021234567890128")),  # UnionPay, 19
        ("卡号：5555-5555-5555-4444", ("CREDIT_CARD", "5555-5555-5555-4444")),
        ("Amex 3782 822463 10005", ("CREDIT_CARD", "3782 822463 10005")),
        ("SSN 536-22-1844.", ("US_SSN", "536-22-1844")),
        ("my ssn is 536221844", ("US_SSN", "536221844")),
        ("身份证号11010519491231002X，", ("CN_ID", "11010519491231002X")),
        ("电话13812345678", ("PHONE", "13812345678")),
        ("mobile +33 6 81 06 75 09.", ("PHONE", "+33 6 81 06 75 09")),  # groups of two
        ("call +1 415-555-2671 now", ("PHONE", "+1 415-555-2671")),
        ("or (415) 555-2671", ("PHONE", "(415) 555-2671")),
        ("IBAN GB82 WEST 1234 5698 7654 32 please", ("IBAN", "GB82 WEST 1234 5698 7654 32")),
        ("邮箱：zhang.wei+tag@mail.example.com。", ("EMAIL", "zhang.wei+tag@mail.example.com")),
        ("from 10.0.12.7:8080", ("IP_ADDRESS", "10.0.12.7")),
        ("addr 2001:db8::8a2e:370:7334.", ("IP_ADDRESS", "2001:db8::8a2e:370:7334")),
        ("Authorization: Bearer abcdef0123456789ABCDEF", ("SECRET", "abcdef0123456789ABCDEF")),
        ("AWS AKIAIOSFODNN7EXAMPLE", ("SECRET", "AKIAIOSFODNN7EXAMPLE")),
        ("tok ghp_" + "a1" * 18 + " x", ("SECRET", "ghp_" + "a1" * 18)),
    ],
)
def test_finds_validated_values_wherever_they_are_written(
    text: str, expected: tuple[str, str]
) -> None:
    assert found(text) == [expected]


@pytest.mark.parametrize(
    "text",
    [
        "Order #4012888888881881 shipped",  # Luhn-valid, but an order number
        "订单号4012888888881881已发货",
        "tracking number 1234567812345678",
        "ref 4111111111111112",  # fails Luhn
        "SSN 666-12-3456 and 123-00-4567 and 078-05-1120",  # never issued / advertised
        "invoice 123456789",  # nine digits without an SSN word
        "11010519491231002Y is not an ID, nor 110105194902301234",  # bad check, bad date
        "version 1.2.3.4 and v10.0.0.1, 版本 4.2.1.0",
        "999.1.2.3 and 3.2.1 and 2024.01.15",
        "std::vector and 12:30:45 and a::b",
        "uuid 123e4567-e89b-12d3-a456-426614174000",
        "sha 9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
        "ts 1700000000000 and 1700000000",
        "pip install sk-learn-compatible; Bearer of bad news",
        "Total: 1,234,567.89 on 2026-03-14 10:00:00",
        "DE00 3704 0044 0532 0130 00 (bad check digits)",
    ],
)
def test_hard_negatives_stay_untouched(text: str) -> None:
    assert found(text) == []


def test_a_private_key_block_is_one_secret_even_when_cut() -> None:
    block = "-----BEGIN RSA PRIVATE KEY-----\nMIIEow1234\nabcd==\n-----END RSA PRIVATE KEY-----"
    assert found(f"key:\n{block}\nthanks") == [("SECRET", block)]
    cut = "-----BEGIN PRIVATE KEY-----\nMIIEow1234\nabcd"
    assert found(cut) == [("SECRET", cut)]


def test_custom_patterns_and_their_group() -> None:
    detector = Detector(["EMAIL"], [CustomPattern("EMPLOYEE", re.compile(r"EMP-(\d{6})"))])
    text = "EMP-123456 wrote to a@b.io"
    assert [(f.entity, text[f.start : f.end]) for f in detector.find(text)] == [
        ("EMPLOYEE", "123456"),
        ("EMAIL", "a@b.io"),
    ]


def test_only_the_wanted_entities() -> None:
    detector = Detector(["EMAIL"])
    assert [f.entity for f in detector.find("4111 1111 1111 1111 a@b.io")] == ["EMAIL"]
    with pytest.raises(ValueError, match="unknown entity"):
        Detector(["PASSPORT"])


def test_validators() -> None:
    assert card_issuer("4111111111111111") == "visa"
    assert card_issuer("6222021234567890128") == "unionpay"
    assert card_issuer("1234567812345670") is None  # Luhn-valid, no issuer
    assert is_us_ssn("536221844") and not is_us_ssn("900221844")
    assert is_cn_id("11010519491231002X") and not is_cn_id("110105194912310021")
    assert is_iban("GB82WEST12345698765432") and not is_iban("GB83WEST12345698765432")


def test_a_csv_column_name_is_the_context_of_its_values() -> None:
    # Both numbers are Luhn-valid with a Visa prefix: the column says which is a card.
    rows = "order_id,tracking_number,card_number,amount\n"
    rows += "1001,4012888888881881,4111111111111111,12.50\n"
    rows += "1002,4012888888881881,4111111111111111,99.00\n"
    assert found(rows) == [("CREDIT_CARD", "4111111111111111")] * 2
    # A Chinese header, and a timestamp whose milliseconds add a comma to some rows.
    chinese = "订单号,快递单号,下单时间\n7781,4012888888881881,2024-01-01 10:00:00,768\n"
    assert found(chinese) == []
    # Commas in a sentence are no table: the card word nearby decides.
    assert found("我的银行卡4012888888881881被重复扣款¥18,260.99，请退款, 谢谢") == [
        ("CREDIT_CARD", "4012888888881881")
    ]


def test_ibans_one_after_another_in_a_table() -> None:
    rows = "id,IBAN\n1,FR76 3000 6000 0112 3456 7890 189\n2,IT60X0542811101000000123456\n"
    assert [e for e, _ in found(rows)] == ["IBAN", "IBAN"]


def test_a_chinese_id_that_also_passes_luhn_is_an_id() -> None:
    # 36… is a Diners prefix and this number passes Luhn; its check character says ID.
    value = "360102195103130194"
    assert card_issuer(value) is not None
    assert found(f"身份证号码：{value}，姓名") == [("CN_ID", value)]


def test_phone_validity_is_remembered_by_range_not_by_number() -> None:
    ranges = PhoneRanges()
    assert ranges.valid("(415) 555-2671", "US") and ranges.valid("(415) 555-9999", "US")
    assert not ranges.valid("(123) 555-2671", "US")  # no area code starts with 1
    held = repr(ranges._known)
    assert "2671" not in held and "9999" not in held


@pytest.mark.parametrize(
    "text",
    [
        "2649 6796 8113 6180 4012 8888 8888 1881 0000 1234",  # a row of numbers, not a card
        "317 401 660 928 411 111 111 111 111 200",
        "pip install foo==1.2.3.4 and Firmware 10.4.12.200",
        "The bearer responsibilities of the carrier are listed below.",
        "impl Cafe::Bead for Face::Add {}",
    ],
)
def test_ordinary_text_the_review_found_mangled(text: str) -> None:
    assert found(text) == []


@pytest.mark.parametrize(
    "text",
    [
        "-----BEGIN PRIVATE KEY-----!" * 8000,  # unclosed headers: was quadratic
        "4111111111111111, " * 12000,  # cards on one long line: was quadratic
        "+12 34 56 78 9a " * 15000,  # a phone-library call per number
        ":" * 200_000 + "@" * 200_000,
    ],
)
def test_crafted_text_cannot_stall_the_scan(text: str) -> None:
    # Seconds here (20 s and more before); the bound leaves a wide margin for slow CI.
    started = time.perf_counter()
    DETECTOR.find(text)
    assert time.perf_counter() - started < 3.0
