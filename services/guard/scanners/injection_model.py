"""The learned prompt-injection classifier: a logistic-regression head over all-MiniLM-L6-v2 embeddings.

The head (``services/guard/data/injection_head.json``) is trained by
``python -m services.guard.training.train_heads`` on the corpus under ``services/guard/data/corpus``.
It reports one whole-text match with the probability (highest over the text's windows) as its score.
"""

from __future__ import annotations

from pathlib import Path

from services.guard.embeddings import Embedder, LinearHead
from services.guard.scanners.base import Match

HEAD_PATH = Path(__file__).resolve().parent.parent / "data" / "injection_head.json"


class InjectionClassifier:
    name = "injection"
    spans = False

    def __init__(self, embedder: Embedder, head_path: Path = HEAD_PATH) -> None:
        self.embedder = embedder
        self.head = LinearHead(head_path, embedder.model_id)

    def probability(self, text: str) -> float:
        if not text.strip():
            return 0.0
        return self.head.predict(self.embedder.embed(text))["injection"]

    def scan(self, text: str) -> list[Match]:
        return [Match("injection.classifier", 0, len(text), self.probability(text))] if text.strip() else []
