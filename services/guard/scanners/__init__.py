"""Scanners: each finds spans of one kind of risk in a text. They share :class:`Scanner`'s interface."""

from services.guard.scanners.base import Match, Scanner
from services.guard.scanners.injection import InjectionScanner
from services.guard.scanners.pii import PiiScanner

__all__ = ["InjectionScanner", "Match", "PiiScanner", "Scanner", "default_scanners"]


def default_scanners() -> list[Scanner]:
    return [InjectionScanner(), PiiScanner()]
