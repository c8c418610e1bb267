"""The scanner interface shared by every scanner, and the stream hold-back helper.

A scanner finds :class:`Match` es in one text. Span scanners (PII, secrets, injection rules) return the
exact spans; whole-text scanners (the learned injection classifier, toxicity) return one match covering
the text per signal, with its probability as the score, even when it is low (``/v1/moderations``
reports every score; the policy's threshold decides what becomes a finding).

Span scanners also answer :meth:`StreamScanner.hold`: the index from which a text's tail could still
become (or grow) a match once more characters arrive. A streamed answer is released up to there.
"""

from __future__ import annotations

import functools
import re
from collections.abc import Iterable
from dataclasses import dataclass
from re import _constants as _sre
from re import _parser as _sre_parse
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
class DeferrableScanner(Scanner, Protocol):
    """A learned classifier with a cheap first stage: the engine can take the first stage's answer and leave the
    slow stage for later (``ScanDeferred``), and it corroborates the role_spoof rule."""

    def scan_fast(self, text: str) -> list[Match] | None:
        """:meth:`scan` when the first stage decides; None when the text needs the slow stage."""
        ...


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


# -- literal gates --------------------------------------------------------------------------------------

# Syntax the ``re`` parser would read differently from the ``regex`` module (POSIX classes, fuzzy matching,
# named lists, Unicode properties, version/fuzzy flags such as V1 set operations): patterns using it get no gate.
_REGEX_ONLY = re.compile(r"\[:\^?\w+:\]|\{[eisd]\s*[<=]|\\[pPLXNGKm]|\(\?[a-zV0-9]*[fbeVpr]")
_FLAGS = re.IGNORECASE | re.VERBOSE | re.DOTALL | re.MULTILINE | re.ASCII


class LiteralGate:
    """A cheap necessary condition for a pattern to match: literal strings that every match contains.

    ``clauses`` is a conjunction of disjunctions: a match contains, for every clause, at least one of its
    strings (lowercased). They are read off the pattern's parse tree: runs of literal characters, small
    character sets, what every branch of an alternation needs, and what a repeat needs when it must occur at
    least once; anything else (lookarounds, classes, optional parts) requires nothing. :meth:`may_match`
    checks them with substring searches on the lowercased text, a few microseconds a kilobyte, so a rule
    whose trigger words are absent is skipped without running its regex. The check is only applied to ASCII
    texts: there lowercasing is exactly the case folding case-insensitive patterns use (outside ASCII a few
    characters fold onto ASCII letters, e.g. the Kelvin sign onto ``k``).
    """

    __slots__ = ("clauses",)

    def __init__(self, pattern: str | re.Pattern[str] | regex.Pattern[str], flags: int = 0) -> None:
        if not isinstance(pattern, str):
            pattern, flags = pattern.pattern, pattern.flags
        self.clauses: tuple[tuple[str, ...], ...] = ()
        if _REGEX_ONLY.search(pattern):
            return
        try:
            parsed = _sre_parse.parse(pattern, flags & _FLAGS)
        except (re.error, TypeError, ValueError, OverflowError, RecursionError):
            return
        unique = dict.fromkeys(_clauses(parsed))
        # Longest strings first (the most selective clauses fail fastest), each clause's longest first.
        ordered = sorted(unique, key=lambda c: -min(map(len, c)))
        self.clauses = tuple(tuple(sorted(c, key=lambda s: (-len(s), s))) for c in ordered)

    def may_match(self, lowered: str | None) -> bool:
        """Whether the pattern could match the text whose lowercased form is ``lowered`` (None: a non-ASCII
        text, no gate)."""
        if lowered is None:
            return True
        for clause in self.clauses:  # plain loops: this runs dozens of times per scanned text
            for literal in clause:
                if literal in lowered:
                    break
            else:
                return False
        return True


@functools.lru_cache(maxsize=1024)
def gate_for(pattern: re.Pattern[str] | regex.Pattern[str]) -> LiteralGate:
    """The (cached) :class:`LiteralGate` of a compiled pattern."""
    return LiteralGate(pattern)


def gate_text(text: str) -> str | None:
    """What :meth:`LiteralGate.may_match` takes: the lowercased text, or None for a non-ASCII one."""
    return text.lower() if text.isascii() else None


def _clauses(items) -> list[frozenset[str]]:
    out: list[frozenset[str]] = []
    run: list[str] = []
    for op, av in items:
        if op is _sre.LITERAL and av < 128:
            run.append(chr(av).lower())
            continue
        if run:
            out.append(frozenset({"".join(run)}))
            run = []
        if op is _sre.SUBPATTERN:
            out.extend(_clauses(av[3]))
        elif op is _sre.ATOMIC_GROUP:
            out.extend(_clauses(av))
        elif op in (_sre.MAX_REPEAT, _sre.MIN_REPEAT, _sre.POSSESSIVE_REPEAT):
            if av[0] >= 1:
                out.extend(_clauses(av[2]))
        elif op is _sre.BRANCH:
            alternatives = [_best(_clauses(alt)) for alt in av[1]]
            if all(a is not None for a in alternatives):
                out.append(frozenset().union(*alternatives))
        elif op is _sre.IN and av and all(o is _sre.LITERAL and a < 128 for o, a in av):
            out.append(frozenset(chr(a).lower() for _, a in av))
        # AT, ANY, CATEGORY, NOT_LITERAL, ranges, lookarounds, group references: nothing required.
    if run:
        out.append(frozenset({"".join(run)}))
    return out


def _best(clauses: list[frozenset[str]]) -> frozenset[str] | None:
    return max(clauses, key=lambda c: min(map(len, c)), default=None)
