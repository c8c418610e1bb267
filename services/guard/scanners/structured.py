"""Structured PII found by pattern and confirmed by a checksum or a numbering-plan check.

Payment cards (Luhn + issuer prefix), IBANs (ISO 13616 mod-97 + country length), US social security
numbers (SSA allocation rules), phone numbers (``phonenumbers``' numbering plans), e-mail addresses and
IPv4/IPv6 addresses (``ipaddress``). Patterns are ``regex`` patterns so a stream can ask which tail
characters could still grow into a match (:func:`services.guard.scanners.base.partial_hold`).
"""

from __future__ import annotations

import ipaddress
from collections.abc import Callable
from dataclasses import dataclass

import phonenumbers
import regex

from services.guard.scanners.base import Match, gate_for, gate_text, partial_hold


def luhn_valid(digits: str) -> bool:
    """The Luhn checksum every payment card number satisfies."""
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = ord(ch) - 48
        if i % 2 == 1:
            d *= 2
            if d > 9:
                d -= 9
        total += d
    return total % 10 == 0


# Issuer identification prefixes of the major schemes, with their lengths.
_CARD_SCHEMES: list[tuple[regex.Pattern[str], tuple[int, ...]]] = [
    (regex.compile(r"4"), (13, 16, 19)),  # Visa
    (regex.compile(r"5[1-5]|2(?:2[2-9][1-9]|2[3-9]\d|[3-6]\d\d|7[01]\d|720)"), (16,)),  # Mastercard
    (regex.compile(r"3[47]"), (15,)),  # American Express
    (regex.compile(r"6(?:011|5|4[4-9])"), (16, 19)),  # Discover
    (regex.compile(r"35(?:2[89]|[3-8])"), (16, 17, 18, 19)),  # JCB
    (regex.compile(r"3(?:0[0-5]|[689])"), (14, 16, 19)),  # Diners Club
    (regex.compile(r"62"), (16, 17, 18, 19)),  # UnionPay
    (regex.compile(r"5[06-9]|6\d"), (12, 13, 14, 15, 16, 17, 18, 19)),  # Maestro
]


def card_valid(raw: str) -> bool:
    digits = raw.replace(" ", "").replace("-", "")
    if not 13 <= len(digits) <= 19 or not luhn_valid(digits) or len(set(digits)) < 2:
        return False
    return any(rx.match(digits) and len(digits) in lengths for rx, lengths in _CARD_SCHEMES)


# Lengths of IBANs per country (ISO 13616 registry, the SEPA countries and the other common ones).
_IBAN_LENGTHS = {
    "AD": 24, "AE": 23, "AL": 28, "AT": 20, "AZ": 28, "BA": 20, "BE": 16, "BG": 22, "BH": 22, "BR": 29,
    "CH": 21, "CR": 22, "CY": 28, "CZ": 24, "DE": 22, "DK": 18, "DO": 28, "EE": 20, "EG": 29, "ES": 24,
    "FI": 18, "FO": 18, "FR": 27, "GB": 22, "GE": 22, "GI": 23, "GL": 18, "GR": 27, "GT": 28, "HR": 21,
    "HU": 28, "IE": 22, "IL": 23, "IQ": 23, "IS": 26, "IT": 27, "JO": 30, "KW": 30, "KZ": 20, "LB": 28,
    "LC": 32, "LI": 21, "LT": 20, "LU": 20, "LV": 21, "MC": 27, "MD": 24, "ME": 22, "MK": 19, "MR": 27,
    "MT": 31, "MU": 30, "NL": 18, "NO": 15, "PK": 24, "PL": 28, "PS": 29, "PT": 25, "QA": 29, "RO": 24,
    "RS": 22, "SA": 24, "SC": 31, "SE": 24, "SI": 19, "SK": 24, "SM": 27, "ST": 25, "SV": 28, "TL": 23,
    "TN": 24, "TR": 26, "UA": 29, "VA": 22, "VG": 24, "XK": 20,
}  # fmt: skip


def iban_valid(raw: str) -> bool:
    iban = raw.replace(" ", "").upper()
    if _IBAN_LENGTHS.get(iban[:2]) != len(iban):
        return False
    moved = iban[4:] + iban[:4]
    number = "".join(str(int(ch, 36)) for ch in moved)
    return int(number) % 97 == 1


# Numbers the SSA never issues, and ones famous from advertising that are not anyone's.
_SSN_NOT_ISSUED = {"078051120", "219099999", "457555462"}


def ssn_valid(raw: str) -> bool:
    digits = raw.replace("-", "").replace(" ", "")
    area, group, serial = digits[:3], digits[3:5], digits[5:]
    if area in {"000", "666"} or area[0] == "9" or group == "00" or serial == "0000":
        return False
    return digits not in _SSN_NOT_ISSUED and len(set(digits)) > 1


def phone_valid(raw: str, region: str) -> bool:
    digits = sum(c.isdigit() for c in raw)
    if not 7 <= digits <= 15:
        return False
    try:
        number = phonenumbers.parse(raw, region)
    except phonenumbers.NumberParseException:
        return False
    return phonenumbers.is_valid_number(number)


def ip_valid(raw: str) -> bool:
    try:
        ipaddress.ip_address(raw)
    except ValueError:
        return False
    return True


@dataclass(frozen=True)
class Recognizer:
    type: str
    pattern: regex.Pattern[str]
    validate: Callable[[str], bool]
    score: float


_EMAIL = regex.compile(
    r"(?<![\w.+-])[A-Za-z0-9._%+-]{1,64}@[A-Za-z0-9-]{1,63}(?:\.[A-Za-z0-9-]{1,63})*\.[A-Za-z]{2,24}(?![\w-])"
)
# 13–19 digits, optionally grouped by single spaces or dashes.
_CARD = regex.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
_IBAN = regex.compile(r"(?<![A-Za-z0-9])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![A-Za-z0-9])")
_SSN = regex.compile(r"(?<![\d-])\d{3}([- ])\d{2}\1\d{4}(?![\d-])")
# International (+CC ...) or national numbers with an area code; validated by phonenumbers.
_PHONE = regex.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{1,4}\)[ .-]?|\d{2,4}[ .-])\d{2,4}(?:[ .-]?\d{2,4}){1,2}(?![\w])"
)
_IPV4 = regex.compile(
    r"(?<![\w.])(?:(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)\.){3}(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?![\w]|\.\d)"
)
_IPV6 = regex.compile(r"(?<![\w:.])(?=[0-9A-Fa-f:]*:[0-9A-Fa-f:]*:)[0-9A-Fa-f:]{3,39}(?![\w:])")


def structured_recognizers(phone_region: str = "US") -> list[Recognizer]:
    return [
        Recognizer("pii.email", _EMAIL, lambda s: True, 1.0),
        Recognizer("pii.credit_card", _CARD, card_valid, 1.0),
        Recognizer("pii.iban", _IBAN, iban_valid, 1.0),
        Recognizer("pii.us_ssn", _SSN, ssn_valid, 0.95),
        Recognizer("pii.phone_number", _PHONE, lambda s: phone_valid(s, phone_region), 0.85),
        Recognizer("pii.ip_address", _IPV4, ip_valid, 0.85),
        Recognizer("pii.ip_address", _IPV6, lambda s: any(c.isalnum() for c in s) and ip_valid(s), 0.85),
    ]


class StructuredPii:
    """All checksum-validated recognisers; the later one loses where two overlap (card beats phone)."""

    def __init__(self, phone_region: str = "US") -> None:
        self.recognizers = structured_recognizers(phone_region)
        self.patterns = [r.pattern for r in self.recognizers]

    def scan(self, text: str) -> list[Match]:
        found: list[Match] = []
        lowered = gate_text(text)
        for rec in self.recognizers:
            if not gate_for(rec.pattern).may_match(lowered):
                continue
            for m in rec.pattern.finditer(text):
                if any(f.start < m.end() and m.start() < f.end for f in found):
                    continue
                if rec.validate(m.group()):
                    found.append(Match(rec.type, m.start(), m.end(), rec.score))
        return found

    def hold(self, text: str, start: int = 0) -> int:
        return partial_hold(self.patterns, text, start)
