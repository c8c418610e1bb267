"""Toxicity: ``alt-profanity-check`` (a linear SVM over character and word n-grams, calibrated) for
profanity, plus a multi-label logistic-regression head over the shared MiniLM embeddings for
harassment, hate, violence, self-harm and sexual content (``services/guard/data/toxicity_head.json``,
trained by ``python -m services.guard.training.train_heads``). Both run offline on CPU.

Every category is reported as a whole-text match (``toxicity.<category>``) with its probability.
"""

from __future__ import annotations

from pathlib import Path

from services.guard.embeddings import Embedder, LinearHead
from services.guard.scanners.base import Match

HEAD_PATH = Path(__file__).resolve().parent.parent / "data" / "toxicity_head.json"


class ToxicityScanner:
    name = "toxicity"
    spans = False

    def __init__(self, embedder: Embedder | None, head_path: Path = HEAD_PATH) -> None:
        from profanity_check import predict_prob  # loads its joblib model once

        self._profanity = predict_prob
        self.embedder = embedder
        self.head = LinearHead(head_path, embedder.model_id) if embedder is not None else None

    def scores(self, text: str) -> dict[str, float]:
        if not text.strip():
            return {}
        out = {"profanity": float(self._profanity([text])[0])}
        if self.head is not None and self.embedder is not None:
            out.update(self.head.predict(self.embedder.embed(text)))
        return out

    def scan(self, text: str) -> list[Match]:
        return [Match(f"toxicity.{cat}", 0, len(text), score) for cat, score in self.scores(text).items()]
