"""Secrets: provider key patterns, ``detect-secrets``' regex plugins, keyword assignments and high-entropy
quoted strings.

A match carries only the secret's type and span; its value never leaves this module (findings, logs and
metrics name the type). Redaction replaces it with a typed placeholder that is never restored.
"""

from __future__ import annotations

import math
import re
from collections import Counter

import regex

from services.guard.scanners.base import Match, dedupe, gate_for, gate_text, partial_hold

_KEY_BLOCK_LABEL = r"-----BEGIN (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"
_KEY_BLOCK_END = r"-----END (?:[A-Z0-9]+ )*PRIVATE KEY(?: BLOCK)?-----"

# (type, score, pattern, group): the span is the group's (0: the whole match).
_PROVIDER_PATTERNS: list[tuple[str, float, str, int]] = [
    ("aws_access_key", 1.0,
     r"\b(?:A3T[A-Z0-9]|AKIA|ASIA|ABIA|ACCA|AGPA|AIDA|AROA|AIPA|ANPA|ANVA|APKA)[A-Z0-9]{16}\b", 0),
    ("aws_secret_key", 0.95,
     r"(?i:aws.{0,20}?(?:secret|private)?.{0,10}?(?:key|token).{0,5}?[\s\"'=:]{1,4})"
     r"([A-Za-z0-9/+]{40})(?![A-Za-z0-9/+])", 1),
    ("github_token", 1.0, r"\b(?:ghp|gho|ghu|ghs|ghr)_[A-Za-z0-9]{36}\b", 0),
    ("github_token", 1.0, r"\bgithub_pat_[A-Za-z0-9_]{82}\b", 0),
    ("gitlab_token", 1.0, r"\b(?:glpat|gldt|glft|glsoat|glrt|glptt|gloas)-[A-Za-z0-9_-]{20,50}(?![\w-])", 0),
    ("slack_token", 1.0, r"\bxox[abposr]-[A-Za-z0-9-]{10,250}", 0),
    ("slack_webhook", 1.0, r"https://hooks\.slack\.com/(?:services|workflows)/[A-Za-z0-9_/]{20,}", 0),
    ("stripe_key", 1.0, r"\b(?:sk|rk)_(?:live|test)_[A-Za-z0-9]{24,99}\b", 0),
    ("openai_key", 1.0, r"\bsk-(?:proj-|svcacct-|admin-)?[A-Za-z0-9_-]{20,}T3BlbkFJ[A-Za-z0-9_-]{20,}", 0),
    ("openai_key", 0.95, r"\bsk-(?:proj|svcacct|admin)-[A-Za-z0-9_-]{40,}", 0),
    ("google_api_key", 1.0, r"\bAIza[0-9A-Za-z_-]{35}(?![\w-])", 0),
    ("jwt", 0.95, r"\beyJ[A-Za-z0-9_-]{8,}\.eyJ[A-Za-z0-9_-]{8,}\.[A-Za-z0-9_-]{16,}", 0),
    ("private_key", 1.0, _KEY_BLOCK_LABEL + r"[\s\S]*?" + _KEY_BLOCK_END, 0),
    ("password_assignment", 0.9,
     r"(?i:\b(?:password|passwd|pwd|passphrase|secret|api[_-]?key|access[_-]?token|auth[_-]?token|client[_-]?secret"
     r"|private[_-]?key)\b[\"']?\s{0,3}(?:[:=]|=>|:=)\s{0,3}[\"']?)([^\s\"'`,;]{6,128})", 1),
    ("connection_string", 0.95, r"\b[a-z][a-z0-9+.-]{1,20}://[^\s:/@\"']{1,64}:([^\s:/@\"']{3,128})@[^\s\"']+", 1),
]
_KEY_HEADER = regex.compile(_KEY_BLOCK_LABEL)
_QUOTED = regex.compile(r"([\"'`])([A-Za-z0-9+/=_.~-]{20,200})\1")
# Placeholder-looking values in a keyword assignment are not secrets.
_NOT_A_VALUE = re.compile(r"^(?:[*xX.•]+|<[^>]*>|\$\{?[\w.]+\}?|%\(?\w+\)?s?|\{\{?[\w.]+\}?\}|changeme|none|null|"
                          r"true|false|required|optional|your[_-]?\w*|example\w*|\[[A-Z_]+_\d+\])$", re.IGNORECASE)
_DETECT_SECRETS_SKIP = {"IPPublicDetector", "PrivateKeyDetector", "JwtTokenDetector", "KeywordDetector"}


def shannon_entropy(value: str) -> float:
    counts = Counter(value)
    n = len(value)
    return -sum(c / n * math.log2(c / n) for c in counts.values())


def _snake(name: str) -> str:
    name = name.removesuffix("Detector")
    return re.sub(r"(?<!^)(?=[A-Z][a-z])", "_", name).lower()


def _detect_secrets_patterns() -> list[tuple[str, float, regex.Pattern[str], int]]:
    """``detect-secrets``' regex plugins (the ones our own patterns do not already cover better)."""
    from detect_secrets.core.plugins.util import get_mapping_from_secret_type_to_class
    from detect_secrets.plugins.base import RegexBasedDetector

    out = []
    for cls in get_mapping_from_secret_type_to_class().values():
        if not issubclass(cls, RegexBasedDetector) or cls.__name__ in _DETECT_SECRETS_SKIP:
            continue
        for rx in cls().denylist:
            compiled = regex.compile(rx.pattern, rx.flags & ~re.UNICODE)
            group = max(range(compiled.groups + 1), key=lambda g: g > 0)  # the last group, if any
            out.append((_snake(cls.__name__), 0.85, compiled, group))
    return out


class SecretsScanner:
    name = "secrets"
    spans = True

    def __init__(self, detect_secrets: bool = True, entropy_base64: float = 4.3) -> None:
        self.patterns = [(t, s, regex.compile(p), g) for t, s, p, g in _PROVIDER_PATTERNS]
        if detect_secrets:
            self.patterns += _detect_secrets_patterns()
        self.entropy_base64 = entropy_base64
        self._hold = [p for _, _, p, _ in self.patterns] + [_QUOTED, _KEY_HEADER]

    def scan(self, text: str) -> list[Match]:
        found: list[Match] = []
        lowered = gate_text(text)  # patterns whose literal parts are absent are skipped
        for kind, score, rx, group in self.patterns:
            if not gate_for(rx).may_match(lowered):
                continue
            for m in rx.finditer(text):
                g = group if group and m.group(group) and len(m.group(group)) >= 6 else 0
                start, end = m.span(g)
                if g == 0:  # some plugins' patterns include a delimiter on each side
                    value = m.group()
                    start += len(value) - len(value.lstrip(" \t\n=:\"'"))
                    end -= len(value) - len(value.rstrip(" \t\n\"'"))
                if kind == "password_assignment" and (
                    _NOT_A_VALUE.match(text[start:end]) or shannon_entropy(text[start:end]) < 2.5
                ):
                    continue
                if end > start:
                    found.append(Match(f"secrets.{kind}", start, end, score))
        # A private key whose end line is missing (cut off): everything from its header on.
        for m in _KEY_HEADER.finditer(text) if gate_for(_KEY_HEADER).may_match(lowered) else ():
            if not any(f.start <= m.start() < f.end for f in found):
                found.append(Match("secrets.private_key", m.start(), len(text), 1.0))
        for m in _QUOTED.finditer(text):
            value = m.group(2)
            if (
                any(c.isdigit() for c in value)
                and any(c.isupper() for c in value)
                and any(c.islower() for c in value)
                and shannon_entropy(value) >= self.entropy_base64
            ):
                found.append(Match("secrets.high_entropy_string", m.start(2), m.end(2), 0.7))
        return dedupe(found)

    def hold(self, text: str, start: int = 0) -> int:
        return partial_hold(self._hold, text, start)
