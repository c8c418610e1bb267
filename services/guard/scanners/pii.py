"""Structured PII by pattern with validation: e-mail addresses, phone numbers, payment cards (Luhn)."""

from __future__ import annotations

import re

from services.guard.scanners.base import Match

_EMAIL = re.compile(r"(?<![\w.+-])[A-Za-z0-9._%+-]+@[A-Za-z0-9-]+(?:\.[A-Za-z0-9-]+)*\.[A-Za-z]{2,}\b")
# 13–19 digits, optionally grouped by single spaces or dashes.
_CARD = re.compile(r"(?<![\d-])\d(?:[ -]?\d){12,18}(?![\d-])")
# International (+CC ...) or North-American style numbers; at least 9 digits in all.
_PHONE = re.compile(
    r"(?<![\w+])(?:\+\d{1,3}[ .-]?)?(?:\(\d{2,4}\)[ .-]?|\d{2,4}[ .-])\d{3,4}[ .-]?\d{3,4}(?![\w])"
)


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


class PiiScanner:
    name = "pii"

    def scan(self, text: str) -> list[Match]:
        found: list[Match] = [Match("pii.email", m.start(), m.end(), 1.0) for m in _EMAIL.finditer(text)]
        cards: list[tuple[int, int]] = []
        for m in _CARD.finditer(text):
            digits = re.sub(r"[ -]", "", m.group())
            if 13 <= len(digits) <= 19 and luhn_valid(digits):
                found.append(Match("pii.credit_card", m.start(), m.end(), 1.0))
                cards.append((m.start(), m.end()))
        for m in _PHONE.finditer(text):
            digits = sum(c.isdigit() for c in m.group())
            overlaps_card = any(s < m.end() and m.start() < e for s, e in cards)
            if 9 <= digits <= 15 and not overlaps_card:
                found.append(Match("pii.phone_number", m.start(), m.end(), 0.9))
        return found
