"""Turn scanner matches into a verdict and redacted texts.

A policy maps each scanner to an action — ``block``, ``redact`` or ``log`` — and a score threshold.
Redaction replaces each span with a typed placeholder (``[EMAIL_1]``); the same value gets the same
placeholder across all texts of one request.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from services.guard.scanners.base import Match, Scanner

Action = Literal["block", "redact", "log"]
_RANK: dict[str, int] = {"log": 0, "redact": 1, "block": 2}


@dataclass(frozen=True)
class Rule:
    action: Action
    threshold: float = 0.5


@dataclass(frozen=True)
class Policy:
    rules: dict[str, Rule] = field(default_factory=dict)
    default: Rule = Rule("log")

    def rule_for(self, scanner: str) -> Rule:
        return self.rules.get(scanner, self.default)


INPUT_POLICY = Policy({"injection": Rule("block", 0.8), "pii": Rule("redact", 0.5)})
OUTPUT_POLICY = Policy({"injection": Rule("log", 0.8), "pii": Rule("redact", 0.5)})


@dataclass(frozen=True)
class Finding:
    match: Match
    text_index: int
    action: Action


@dataclass
class ScanResult:
    verdict: Literal["allow", "redact", "block"]
    findings: list[Finding]
    redacted_texts: list[str]


def _placeholder(kind: str) -> str:
    return kind.split(".", 1)[-1].upper()


def scan_texts(texts: list[str], scanners: list[Scanner], policy: Policy) -> ScanResult:
    findings: list[Finding] = []
    for index, text in enumerate(texts):
        for scanner in scanners:
            rule = policy.rule_for(scanner.name)
            findings.extend(
                Finding(m, index, rule.action) for m in scanner.scan(text) if m.score >= rule.threshold
            )
    worst = max((_RANK[f.action] for f in findings), default=-1)
    if worst == _RANK["block"]:
        return ScanResult("block", findings, [])
    if worst == _RANK["redact"]:
        return ScanResult("redact", findings, _redact(texts, [f for f in findings if f.action == "redact"]))
    return ScanResult("allow", findings, [])


def _redact(texts: list[str], findings: list[Finding]) -> list[str]:
    labels: dict[tuple[str, str], str] = {}
    counters: dict[str, int] = {}
    out = []
    for index, text in enumerate(texts):
        spans = sorted((f.match for f in findings if f.text_index == index), key=lambda m: (m.start, -m.end))
        pieces, pos = [], 0
        for m in spans:
            if m.start < pos:  # overlaps a span already replaced
                continue
            value = text[m.start : m.end]
            kind = _placeholder(m.type)
            label = labels.get((kind, value))
            if label is None:
                counters[kind] = counters.get(kind, 0) + 1
                label = labels[(kind, value)] = f"[{kind}_{counters[kind]}]"
            pieces += [text[pos : m.start], label]
            pos = m.end
        pieces.append(text[pos:])
        out.append("".join(pieces))
    return out
