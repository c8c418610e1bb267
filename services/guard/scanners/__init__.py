"""Scanners: each finds one kind of risk in a text behind :class:`Scanner`'s interface.

``injection`` (rules) and ``injection_model`` (MiniLM head) share the ``injection`` policy; ``pii``
(Presidio + checksum recognisers), ``secrets`` and ``toxicity`` have their own.
"""

from services.guard.scanners.base import Match, Scanner, StreamScanner
from services.guard.scanners.injection import InjectionScanner
from services.guard.scanners.secrets import SecretsScanner
from services.guard.scanners.structured import StructuredPii

__all__ = ["InjectionScanner", "Match", "Scanner", "SecretsScanner", "StreamScanner", "StructuredPii"]
