"""The scanner interface shared by every scanner, and the stream hold-back helper.

A scanner finds :class:`Match` es in one text. Span scanners (PII, secrets, injection rules) return the
exact spans; whole-text scanners (the learned injection classifier, toxicity) return one match covering
the text per signal, with its probability as the score, even when it is low (``/v1/moderations``
reports every score; the policy's threshold decides what becomes a finding).

Span scanners also answer :meth:`StreamScanner.hold`: the index from which a text's tail could still
become (or grow) a match once more characters arrive. A streamed answer is released up to there.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Protocol, runtime_checkable

import regex


@dataclass(frozen=True, slots=True)
class Match:
    """One finding in one text: ``type`` is ``<scanner>.<kind>`` (e.g. ``pii.email``)."""

    type: str
    start: int
    end: int
    score: float

    @property
    def scanner(self) -> str:
        return self.type.split(".", 1)[0]

    @property
    def kind(self) -> str:
        return self.type.split(".", 1)[-1]


@runtime_checkable
class Scanner(Protocol):
    name: str  # the policy key: "injection", "pii", "secrets" or "toxicity"
    spans: bool  # True: exact spans (redactable, held back in streams); False: whole-text signals

    def scan(self, text: str) -> list[Match]: ...


@runtime_checkable
class StreamScanner(Scanner, Protocol):
    def hold(self, text: str) -> int:
        """Smallest index ``i`` such that ``text[i:]`` could still be the start of a match."""
        ...


def partial_hold(patterns: Iterable[regex.Pattern[str]], text: str, start: int = 0) -> int:
    """Where the earliest match that touches the end of ``text`` begins (``len(text)`` when none).

    Uses the ``regex`` module's partial matching: a match that reaches the end of the string — complete
    or not — could still grow or complete when the next characters arrive.
    """
    end = len(text)
    hold = end
    for rx in patterns:
        for m in rx.finditer(text, start, partial=True):
            if m.end() == end and m.end() > m.start():
                hold = min(hold, m.start())
                break
    return hold


def overlaps(a: Match, b: Match) -> bool:
    return a.start < b.end and b.start < a.end


def dedupe(matches: list[Match]) -> list[Match]:
    """Drop matches overlapping a higher-scoring (then longer) one of the same scanner."""
    kept: list[Match] = []
    for m in sorted(matches, key=lambda m: (-m.score, m.start - m.end)):
        if not any(overlaps(m, k) for k in kept):
            kept.append(m)
    return sorted(kept, key=lambda m: m.start)
