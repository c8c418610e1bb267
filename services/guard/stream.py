"""Scanning a streamed answer as it flows.

Each choice keeps the raw text so far and how much of it was released. On every delta the span scanners
say where their earliest possible unfinished match begins (:meth:`StreamScanner.hold`); everything before
that point is scanned (with some already-released context for look-behinds), redacted, restored and
released; the tail stays held until the next delta decides it. So a card number or key split over two
deltas is still caught whole, while ordinary prose is released about one word behind the model.

Whole-text scanners (classifiers) cannot hold text back usefully: when their rule blocks, they judge each
completed sentence as it is released and the whole answer at the end.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import regex

from services.guard.engine import Engine, count
from services.guard.metrics import STREAM_HELD_CHARS
from services.guard.policy import (
    PLACEHOLDER,
    Finding,
    Policy,
    Redactor,
    Verdict,
    decide,
    own_values,
    restore,
    verdict_of,
)
from services.guard.scanners.base import partial_hold

_CONTEXT = 256  # released characters re-scanned before the new ones (look-behinds, NER context)
_PLACEHOLDER_PREFIX = regex.compile(PLACEHOLDER.pattern)
_SENTENCE_END = regex.compile(r"[.!?…]+(?=\s)|\n")


@dataclass
class _Choice:
    text: str = ""
    released: int = 0  # raw characters already decided
    judged: int = 0  # raw characters already judged by whole-text scanners
    blocked: bool = False


@dataclass
class StreamStep:
    text: str
    verdict: Verdict
    findings: list[Finding] = field(default_factory=list)
    held: int = 0


class OutputStream:
    def __init__(
        self, engine: Engine, policy: Policy, restore_map: dict[str, str] | None = None, max_hold: int = 4096,
        context: list[str] | None = None,
    ) -> None:
        self.engine = engine
        self.policy = policy
        self.restore_map = dict(restore_map or {})
        self.context = list(context or [])  # the retrieved chunks the caller may read (see Engine.scan)
        self.redactor = Redactor(known=self.restore_map)
        self.max_hold = max_hold
        self.choices: dict[int, _Choice] = {}
        self.span_scanners = [s for s in engine.span_scanners if policy.active(s.name)]
        self.blocking_text_scanners = [
            s for s in engine.text_scanners if policy.rule_for(s.name).action == "block"
        ]
        self.findings: list[Finding] = []

    def _span_matches(self, window: str, light: bool) -> list:
        if not light:
            found = self.engine.matches(window, self.policy, self.span_scanners)
        else:
            found = []
            for s in self.span_scanners:
                found.extend(s.scan(window, ner=False) if s.name == "pii" else s.scan(window))
        return own_values(found, window, self.restore_map, self.context)

    def _hold(self, c: _Choice) -> int:
        start = max(0, c.released - _CONTEXT)
        hold = len(c.text)
        for s in self.span_scanners:
            hold = min(hold, s.hold(c.text, start))
        if self.restore_map:
            hold = min(hold, partial_hold([_PLACEHOLDER_PREFIX], c.text, start))
        return max(c.released, hold, len(c.text) - self.max_hold)

    def feed(self, index: int, delta: str, final: bool = False) -> StreamStep:
        c = self.choices.setdefault(index, _Choice())
        if c.blocked:
            return StreamStep("", "block")
        c.text += delta
        hold = len(c.text) if final else self._hold(c)
        step = StreamStep("", "allow")
        # A whole-text scanner whose rule blocks judges each sentence before any of it is released.
        if self.blocking_text_scanners:
            if not final:
                hold = min(hold, max(c.released, _last_sentence_end(c.text, c.judged, len(c.text))))
            if hold > c.judged:
                piece = c.text[c.judged : hold]
                fs = decide(self.engine.matches(piece, self.policy, self.blocking_text_scanners), index, self.policy)
                step.findings.extend(_shift(f, c.judged) for f in fs)
                c.judged = hold
        if hold > c.released and not any(f.action == "block" for f in step.findings):
            ctx = max(0, c.released - _CONTEXT)
            window = c.text[ctx:]
            # Names are capitalised: the NER pass runs only when the text being released has a capital.
            light = not any(ch.isupper() for ch in c.text[c.released : hold])
            found = self._span_matches(window, light)
            # A complete match that the hold point cuts (a scanner's hold saw only a shorter possible match, e.g.
            # "eve@" of "eve@evil.example.") is held back whole: releasing its start would let it out unredacted.
            for m in found:
                if m.start + ctx < hold < m.end + ctx:
                    hold = max(c.released, m.start + ctx)
            matches = [m for m in found if m.start + ctx >= c.released and m.end + ctx <= hold]
            fs = decide(matches, index, self.policy)
            segment = c.text[c.released : hold]
            if any(f.action == "redact" for f in fs):
                self.redactor.reserve(c.text[:hold])  # placeholders the model copied keep their own numbers
                segment = self.redactor.redact(
                    segment, [f.match for f in fs if f.action == "redact"], offset=c.released - ctx
                )
            step.findings.extend(_shift(f, ctx) for f in fs)
            step.text = restore(segment, self.restore_map)
            c.released = hold
        if final and not any(f.action == "block" for f in step.findings):
            # The whole answer, once, for the other whole-text signals (logged, or blocking as a whole).
            others = [s for s in self.engine.text_scanners if self.policy.active(s.name)]
            step.findings.extend(decide(self.engine.matches(c.text, self.policy, others), index, self.policy))
        step.verdict = verdict_of(step.findings)
        if step.verdict == "block":
            c.blocked = True
            step.text = ""
        count(step.findings)
        self.findings.extend(step.findings)
        step.held = len(c.text) - c.released
        STREAM_HELD_CHARS.observe(step.held)
        return step


def _shift(f: Finding, offset: int) -> Finding:
    m = f.match
    return Finding(type(m)(m.type, m.start + offset, m.end + offset, m.score), f.text_index, f.action)


def _last_sentence_end(text: str, lo: int, hi: int) -> int:
    end = lo
    for m in _SENTENCE_END.finditer(text, lo, hi):
        end = m.end()
    return end

