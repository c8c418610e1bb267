"""The guard's scanning engine: loads every scanner once and applies a policy to texts.

All of it is CPU work that the gRPC servicer runs on a thread pool, never on the event loop.
"""

from __future__ import annotations

import logging
import threading
import time
from dataclasses import dataclass, field

from services.guard.metrics import FINDINGS, SCANNER_SECONDS
from services.guard.policy import Finding, Policy, Redactor, Verdict, decide, own_values, restore, verdict_of
from services.guard.scanners.base import DeferrableScanner, Match, Scanner
from services.guard.scanners.injection import ROLE_SPOOF_CORROBORATED, corroborate
from services.guard.settings import GuardSettings

log = logging.getLogger(__name__)

# /v1/moderations categories: the OpenAI names our toxicity head models, plus our own.
TOXICITY_CATEGORIES = {
    "harassment": "harassment", "hate": "hate", "violence": "violence", "self_harm": "self-harm",
    "sexual": "sexual", "profanity": "profanity",
}  # fmt: skip
SCANNER_CATEGORIES = {"injection": "prompt_injection", "pii": "pii", "secrets": "secrets"}
# The operator's own messages: not scanned for injection unless ``scan_system_messages`` is on.
TRUSTED_ROLES = frozenset({"system", "developer"})


@dataclass
class ScanResult:
    verdict: Verdict
    findings: list[Finding]
    texts: list[str] | None  # the texts to use instead (redacted and/or restored); None: unchanged
    text_verdicts: list[Verdict]
    placeholders: dict[str, str] = field(default_factory=dict)
    deferred: list[int] = field(default_factory=list)  # texts whose classifier's slow stage was left for later


class _Locked:
    """Serialises calls into a scanner that is not safe to run from several threads (spaCy)."""

    def __init__(self, scanner: Scanner) -> None:
        self.inner = scanner
        self.name = scanner.name
        self.spans = scanner.spans
        self._lock = threading.Lock()

    def scan(self, text: str, **kwargs) -> list[Match]:
        if kwargs.get("ner") is False:
            return self.inner.scan(text, **kwargs)  # patterns only: no lock needed
        with self._lock:
            return self.inner.scan(text, **kwargs)

    def hold(self, text: str, start: int = 0) -> int:
        return self.inner.hold(text, start)  # pattern-only: no lock needed


def build_scanners(settings: GuardSettings) -> list[Scanner]:
    from services.guard.scanners.injection import InjectionScanner
    from services.guard.scanners.pii import PiiScanner
    from services.guard.scanners.secrets import SecretsScanner
    from services.guard.scanners.toxicity import ToxicityScanner

    scanners: list[Scanner] = [InjectionScanner()]
    embedder = None
    if settings.classifiers:
        from services.guard.embeddings import Embedder
        from services.guard.scanners.injection_model import InjectionClassifier

        embedder = Embedder(max_windows=settings.classifier_max_windows)
        scanners.append(InjectionClassifier(embedder))
    entities = tuple(e.strip() for e in settings.pii_ner_entities.split(",") if e.strip())
    pii = PiiScanner(ner=settings.pii_ner, ner_entities=entities, phone_region=settings.phone_region)
    scanners.append(_Locked(pii) if pii.ner else pii)
    scanners.append(SecretsScanner(detect_secrets=settings.detect_secrets))
    scanners.append(ToxicityScanner(embedder))
    return scanners


class Engine:
    def __init__(self, scanners: list[Scanner], scan_system_messages: bool = False) -> None:
        self.scanners = scanners
        self.span_scanners = [s for s in scanners if s.spans]
        self.text_scanners = [s for s in scanners if not s.spans]
        self.scan_system_messages = scan_system_messages
        self._untrusted_only = [s for s in scanners if s.name != "injection"]
        self._deferrable = [s for s in scanners if isinstance(s, DeferrableScanner)]  # checked once, not per text

    @classmethod
    def from_settings(cls, settings: GuardSettings) -> Engine:
        started = time.perf_counter()
        engine = cls(build_scanners(settings), settings.scan_system_messages)
        log.info("scanners loaded", extra={"f_scanners": [type(s).__name__ for s in engine.scanners],
                                           "f_seconds": round(time.perf_counter() - started, 2)})
        return engine

    def matches(self, text: str, policy: Policy | None, scanners: list[Scanner] | None = None) -> list[Match]:
        """Every scanner's matches (those whose rule is ``off`` are skipped when a policy is given)."""
        return self._matches(text, policy, scanners, defer=False)[0]

    def _matches(
        self, text: str, policy: Policy | None, scanners: list[Scanner] | None, defer: bool
    ) -> tuple[list[Match], bool]:
        """:meth:`matches`, and whether a classifier's slow stage was deferred (``defer``: scanners with
        ``scan_fast`` answer from their first stage when it decides, and are left out otherwise)."""
        found: list[Match] = []
        deferred = False
        classifier = False  # whether the learned injection classifier scored (or will score) the text
        for s in scanners if scanners is not None else self.scanners:
            if policy is not None and not policy.active(s.name):
                continue
            learned = s in self._deferrable
            classifier = classifier or learned
            t0 = time.perf_counter()
            got = s.scan_fast(text) if defer and learned else s.scan(text)
            if got is None:
                deferred = True
            else:
                found.extend(got)
            SCANNER_SECONDS.labels(s.name).observe(time.perf_counter() - t0)
        return corroborate(found, classifier), deferred

    def scan(
        self, texts: list[str], policy: Policy, restore_map: dict[str, str] | None = None,
        roles: list[str] | None = None, context: list[str] | None = None, defer: bool = False,
    ) -> ScanResult:  # fmt: skip
        """Apply ``policy`` to ``texts``; ``roles`` (one per text, or None) marks the operator's trusted
        system/developer messages, which skip the injection scanners unless ``scan_system_messages``.
        For an answer, PII the caller already has — the values of ``restore_map`` and values found verbatim in
        ``context`` (its retrieved chunks) — is not a finding, and ``restore_map``'s placeholders are restored.
        ``defer``: leave the learned classifier's slow stage out and list the texts that need it
        (:meth:`scan_deferred` runs it)."""
        restore_map = restore_map or {}
        findings: list[Finding] = []
        per_text: list[list[Finding]] = []
        deferred: list[int] = []
        for i, text in enumerate(texts):
            trusted = bool(roles) and roles[i] in TRUSTED_ROLES and not self.scan_system_messages
            matches, later = self._matches(text, policy, self._untrusted_only if trusted else None, defer)
            if later:
                deferred.append(i)
            fs = decide(own_values(matches, text, restore_map, context or []), i, policy)
            per_text.append(fs)
            findings.extend(fs)
        count(findings)
        verdict = verdict_of(findings)
        text_verdicts = [verdict_of(fs) for fs in per_text]
        if verdict == "block":
            return ScanResult(verdict, findings, None, text_verdicts)  # nothing left to decide: no deferral
        restorable = frozenset(s for s, r in policy.rules.items() if r.restore)
        redactor = Redactor(restorable, restore_map)
        for text in texts:
            redactor.reserve(text)  # placeholders the model copied from its prompt keep their numbers
        out = list(texts)
        if verdict == "redact":
            out = [
                redactor.redact(text, [f.match for f in fs if f.action == "redact"])
                for text, fs in zip(texts, per_text, strict=True)
            ]
        if restore_map:
            out = [restore(t, restore_map) for t in out]
        changed = out != list(texts)
        return ScanResult(verdict, findings, out if changed else None, text_verdicts, redactor.restore_map, deferred)

    def scan_deferred(self, texts: list[str], policy: Policy) -> ScanResult:
        """The slow stage :meth:`scan` with ``defer`` left out, for the texts it listed: the scanners that
        defer (the learned injection classifier) run, and the injection rules again (a fraction of a millisecond)
        so that the classifier can corroborate a role_spoof match; the rules' other findings were reported by
        the first part."""
        deferrable = self._deferrable
        rules = [s for s in self.scanners if s.name == "injection" and s not in deferrable]
        findings: list[Finding] = []
        per_text: list[list[Finding]] = []
        for i, text in enumerate(texts):
            found = self.matches(text, policy, deferrable + rules)
            fs = decide([m for m in found if m.type == "injection.classifier"
                         or (m.type == "injection.role_spoof" and m.score >= ROLE_SPOOF_CORROBORATED)], i, policy)
            per_text.append(fs)
            findings.extend(fs)
        count(findings)
        return ScanResult(verdict_of(findings), findings, None, [verdict_of(fs) for fs in per_text])

    def moderate(self, text: str, policy: Policy) -> tuple[dict[str, tuple[float, bool]], list[Match]]:
        """Score per category (and whether it reaches its scanner's threshold) for one text; every toxicity
        head runs (no cascade)."""
        matches = self.matches(text, None, [s for s in self.scanners if s.name != "toxicity"])
        for s in self.scanners:
            if s.name == "toxicity":
                t0 = time.perf_counter()
                matches.extend(Match(f"toxicity.{c}", 0, len(text), p) for c, p in s.scores(text, full=True).items())
                SCANNER_SECONDS.labels(s.name).observe(time.perf_counter() - t0)
        scores: dict[str, float] = {c: 0.0 for c in (*SCANNER_CATEGORIES.values(), *TOXICITY_CATEGORIES.values())}
        for m in matches:
            if m.scanner == "toxicity":
                category = TOXICITY_CATEGORIES.get(m.kind)
            else:
                category = SCANNER_CATEGORIES.get(m.scanner)
            if category is not None:
                scores[category] = max(scores[category], m.score)
        thresholds = {c: policy.rule_for(s).threshold for s, c in SCANNER_CATEGORIES.items()}
        tox = policy.rule_for("toxicity").threshold
        out = {c: (s, s >= thresholds.get(c, tox)) for c, s in scores.items()}
        return out, [m for m in matches if m.score >= policy.rule_for(m.scanner).threshold]


def count(findings: list[Finding]) -> None:
    for f in findings:
        FINDINGS.labels(f.match.scanner, f.action).inc()
