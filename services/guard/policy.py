"""Policies (per scanner: block / redact / log / off and a threshold) and their application to matches:
verdicts, typed placeholders (``[EMAIL_1]``) and reversible masking.

A request's policy overrides the stage's default rule by rule; an override without a threshold keeps
the default's. The same value gets the same placeholder in every text of a request (and of a stream).
Placeholders of rules with ``restore`` are returned to the caller with their values so the model's
answer can be restored; a secret's never is.
"""

from __future__ import annotations

import re
import threading
from dataclasses import dataclass, field
from typing import Literal

from flotilla.guardpolicy import PLACEHOLDER, SCANNERS, RuleSpec, from_proto, parse_policy, restore
from flotilla.v1 import guard_pb2
from services.guard.scanners.base import Match

Action = Literal["block", "redact", "log", "off"]
Verdict = Literal["allow", "redact", "block"]
_RANK: dict[str, int] = {"off": -1, "log": 0, "redact": 1, "block": 2}
DEFAULT_THRESHOLD = 0.5
__all__ = ["PLACEHOLDER", "Finding", "Policy", "Redactor", "Rule", "decide", "own_values", "restore", "verdict_of"]


@dataclass(frozen=True)
class Rule:
    action: Action
    threshold: float = DEFAULT_THRESHOLD
    restore: bool = False


@dataclass(frozen=True)
class Policy:
    rules: dict[str, Rule] = field(default_factory=dict)
    name: str = "default"

    def rule_for(self, scanner: str) -> Rule:
        return self.rules.get(scanner, Rule("log"))

    def active(self, scanner: str) -> bool:
        return self.rule_for(scanner).action != "off"

    @classmethod
    def from_specs(cls, specs: dict[str, RuleSpec], name: str = "default", base: Policy | None = None) -> Policy:
        rules = dict(base.rules) if base else {s: Rule("log") for s in SCANNERS}
        for scanner, spec in specs.items():
            previous = rules.get(scanner, Rule("log"))
            threshold = spec.threshold if spec.threshold is not None else previous.threshold
            rules[scanner] = Rule(spec.action, threshold, spec.restore)  # type: ignore[arg-type]
        return cls(rules, name)

    @classmethod
    def parse(cls, spec: str, name: str = "default") -> Policy:
        return cls.from_specs(parse_policy(spec), name)

    def with_request(self, policy: guard_pb2.Policy | None) -> Policy:
        """This default overridden by a request's policy (raises ``PolicyError`` when it is invalid)."""
        if policy is None or not policy.rules:
            return self if policy is None or not policy.name else Policy(self.rules, policy.name)
        return Policy.from_specs(from_proto(policy), policy.name or self.name, base=self)


@dataclass(frozen=True)
class Finding:
    match: Match
    text_index: int
    action: Action


def decide(matches: list[Match], text_index: int, policy: Policy) -> list[Finding]:
    """Findings: the matches at or over their scanner's threshold, with the rule's action."""
    out = []
    for m in matches:
        rule = policy.rule_for(m.scanner)
        if rule.action != "off" and m.score >= rule.threshold:
            out.append(Finding(m, text_index, rule.action))
    return out


def verdict_of(findings: list[Finding]) -> Verdict:
    worst = max((_RANK[f.action] for f in findings), default=-1)
    return "block" if worst == 2 else "redact" if worst == 1 else "allow"


def placeholder_kind(match_type: str) -> str:
    return match_type.split(".", 1)[-1].upper()


class Redactor:
    """Replaces spans with typed placeholders, numbering each (kind, value) once per request or stream.

    The replacement itself is Presidio's ``AnonymizerEngine`` with a custom operator per kind (it also
    resolves overlapping spans). Values of ``restorable`` scanners are kept for :attr:`restore_map`.
    """

    _engine = None
    _engine_lock = threading.Lock()

    def __init__(self, restorable: frozenset[str] = frozenset(), known: dict[str, str] | None = None) -> None:
        self._labels: dict[tuple[str, str], str] = {}
        self._counters: dict[str, int] = {}
        self.restorable = restorable
        self.restore_map: dict[str, str] = {}
        for label, value in (known or {}).items():  # the prompt's placeholders keep their labels
            if m := PLACEHOLDER.fullmatch(label):
                self._labels[(m.group(1), value)] = label
        self.reserve(" ".join(known or {}))

    def reserve(self, text: str) -> None:
        """Number new placeholders after those already in ``text`` (e.g. ones the model copied from its prompt),
        so one label never stands for two values."""
        for m in PLACEHOLDER.finditer(text):
            self._counters[m.group(1)] = max(self._counters.get(m.group(1), 0), int(m.group(2)))

    @classmethod
    def engine(cls):
        with cls._engine_lock:
            if cls._engine is None:
                from presidio_anonymizer import AnonymizerEngine

                cls._engine = AnonymizerEngine()
            return cls._engine

    def label(self, kind: str, value: str, scanner: str) -> str:
        label = self._labels.get((kind, value))
        if label is None:
            self._counters[kind] = self._counters.get(kind, 0) + 1
            label = self._labels[(kind, value)] = f"[{kind}_{self._counters[kind]}]"
        if scanner in self.restorable and scanner != "secrets":
            self.restore_map[label] = value
        return label

    def redact(self, text: str, matches: list[Match], offset: int = 0) -> str:
        """``text`` with each match (positions relative to ``offset``) replaced by its placeholder."""
        if not matches:
            return text
        from presidio_anonymizer.entities import OperatorConfig, RecognizerResult

        results, operators = [], {}
        for m in matches:
            kind = placeholder_kind(m.type)
            results.append(RecognizerResult(kind, m.start - offset, m.end - offset, m.score))
            operators[kind] = OperatorConfig(
                "custom", {"lambda": lambda value, kind=kind, scanner=m.scanner: self.label(kind, value, scanner)}
            )
        return self.engine().anonymize(text=text, analyzer_results=results, operators=operators).text


def own_values(matches: list[Match], text: str, restore_map: dict[str, str], context: list[str]) -> list[Match]:
    """``matches`` without the PII the caller already has: its own restored values (``restore_map``) and values
    that occur verbatim in ``context`` (the retrieved chunks of its own documents the model was given).
    Secrets are never exempt."""
    if not restore_map and not context:
        return matches
    mine = set(restore_map.values())
    out = []
    for m in matches:
        if m.scanner == "pii":
            value = text[m.start : m.end]
            if value in mine or (value and _occurs_in(value, context)):
                continue
        out.append(m)
    return out


def _occurs_in(value: str, texts: list[str]) -> bool:
    """``value`` as a whole word in one of ``texts`` ("Ann" is not in "Annual", nor a@b.com in a@b.community)."""
    pattern = re.compile(rf"(?<![\w@.-]){re.escape(value)}(?![\w@-]|\.\w)")
    return any(value in t and pattern.search(t) for t in texts)
