"""Guard policies written as one line, for settings and environment variables.

``"injection=block:0.8, pii=redact:0.5:restore, secrets=redact, toxicity=log:0.9"`` — for each scanner
an action (``block``, ``redact``, ``log`` or ``off``), optionally a score threshold and the ``restore``
flag (PII placeholders restored in the model's answer for the caller). Shared by the guard (its
defaults) and the gateway (the policy it sends per request).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from flotilla.v1 import guard_pb2

SCANNERS = ("injection", "pii", "secrets", "toxicity")
ACTIONS = ("block", "redact", "log", "off")
# Scanners that find whole-text signals cannot redact a span.
REDACTABLE = frozenset({"pii", "secrets"})
# A typed placeholder such as ``[EMAIL_1]`` or ``[PERSON_2]``.
PLACEHOLDER = re.compile(r"\[([A-Z][A-Z0-9_]*)_(\d+)\]")


class PolicyError(ValueError):
    pass


@dataclass(frozen=True)
class RuleSpec:
    scanner: str
    action: str
    threshold: float | None = None
    restore: bool = False

    def validate(self) -> RuleSpec:
        if self.scanner not in SCANNERS:
            raise PolicyError(f"unknown scanner {self.scanner!r} (known: {', '.join(SCANNERS)})")
        if self.action not in ACTIONS:
            raise PolicyError(f"unknown action {self.action!r} for {self.scanner} (known: {', '.join(ACTIONS)})")
        if self.action == "redact" and self.scanner not in REDACTABLE:
            raise PolicyError(f"{self.scanner} cannot redact (use block, log or off)")
        if self.threshold is not None and not 0.0 <= self.threshold <= 1.0:
            raise PolicyError(f"threshold of {self.scanner} must be within 0..1")
        if self.restore and self.scanner != "pii":
            raise PolicyError("only pii placeholders can be restored")
        return self


def parse_policy(spec: str) -> dict[str, RuleSpec]:
    """Parse ``scanner=action[:threshold][:restore]`` items separated by commas."""
    rules: dict[str, RuleSpec] = {}
    for item in filter(None, (part.strip() for part in spec.split(","))):
        name, sep, rest = item.partition("=")
        if not sep:
            raise PolicyError(f"expected scanner=action, got {item!r}")
        parts = [p.strip() for p in rest.split(":")]
        action, threshold, restore = parts[0], None, False
        for extra in parts[1:]:
            if extra == "restore":
                restore = True
            else:
                try:
                    threshold = float(extra)
                except ValueError:
                    raise PolicyError(f"bad threshold {extra!r} in {item!r}") from None
        rules[name.strip()] = RuleSpec(name.strip(), action, threshold, restore).validate()
    return rules


def to_proto(rules: dict[str, RuleSpec], name: str = "default") -> guard_pb2.Policy:
    policy = guard_pb2.Policy(name=name)
    for r in rules.values():
        rule = policy.rules.add(scanner=r.scanner, action=r.action, restore=r.restore)
        if r.threshold is not None:
            rule.threshold = r.threshold
    return policy


def from_proto(policy: guard_pb2.Policy) -> dict[str, RuleSpec]:
    return {
        r.scanner: RuleSpec(
            r.scanner, r.action, r.threshold if r.HasField("threshold") else None, r.restore
        ).validate()
        for r in policy.rules
    }


def restore(text: str, mapping: dict[str, str]) -> str:
    """Put the caller's values back where a text has their placeholders (reversible masking)."""
    if not mapping or "[" not in text:
        return text
    return PLACEHOLDER.sub(lambda m: mapping.get(m.group(), m.group()), text)
