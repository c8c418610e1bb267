from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Match:
    """One finding in one text: ``type`` is ``<scanner>.<kind>`` (e.g. ``pii.email``)."""

    type: str
    start: int
    end: int
    score: float


class Scanner(Protocol):
    name: str

    def scan(self, text: str) -> list[Match]: ...
