"""Prompt-injection heuristics: instruction overrides, system-prompt spoofing and exfiltration asks,
role-play jailbreaks, and invisible / bidi control characters. The learned classifier comes with
the full guard; these rules are its fast first stage."""

from __future__ import annotations

import re

from services.guard.scanners.base import Match

_FLAGS = re.IGNORECASE | re.DOTALL
_RULES: list[tuple[str, float, re.Pattern[str]]] = [
    (
        "injection.override",
        0.95,
        re.compile(
            r"\b(?:ignore|disregard|forget|override|bypass|skip)\b.{0,40}?\b(?:all|any|the|your|my|previous|prior|"
            r"above|earlier|preceding|system|initial|original)\b.{0,25}?\b(?:instructions?|prompts?|rules?|"
            r"directions?|guidelines?|context|messages?)\b",
            _FLAGS,
        ),
    ),
    (
        "injection.prompt_leak",
        0.9,
        re.compile(
            r"\b(?:reveal|print|show|repeat|output|display|tell me|leak|dump)\b.{0,30}?"
            r"\b(?:your|the)\b.{0,15}?"
            r"\b(?:system prompt|initial prompt|hidden (?:prompt|instructions)|developer (?:message|prompt)|"
            r"instructions you were given)\b",
            _FLAGS,
        ),
    ),
    (
        "injection.jailbreak",
        0.9,
        re.compile(
            r"\b(?:you are now|act as|pretend (?:to be|you are)|from now on you are)\b.{0,40}?"
            r"\b(?:DAN|do anything now|unfiltered|uncensored|jailbroken|"
            r"without (?:any )?(?:restrictions|rules|limits|filters))\b"
            r"|\bdeveloper mode\b.{0,20}\b(?:enabled|on|activated)\b",
            _FLAGS,
        ),
    ),
    (
        "injection.role_spoof",
        0.85,
        re.compile(
            r"(?:^|\n)\s*(?:#{1,3}\s*)?(?:system|assistant)\s*:|<\|?(?:im_start|system|endoftext)\|?>|"
            r"\[/?(?:INST|SYS)\]|<<SYS>>",
            re.IGNORECASE,
        ),
    ),
]
# Zero-width, bidi override/isolate and tag characters used to hide instructions from reviewers.
_INVISIBLE = re.compile("[\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u2069\ufeff\U000e0000-\U000e007f]+")


class InjectionScanner:
    name = "injection"

    def scan(self, text: str) -> list[Match]:
        found = [
            Match(kind, m.start(), m.end(), score) for kind, score, rx in _RULES for m in rx.finditer(text)
        ]
        found.extend(
            Match("injection.invisible_chars", m.start(), m.end(), 0.8) for m in _INVISIBLE.finditer(text)
        )
        return found
