"""Toxicity: ``alt-profanity-check`` (a linear SVM over character and word n-grams, calibrated) for
profanity, plus a multi-label logistic-regression head over the shared MiniLM embeddings for
harassment, hate, violence, self-harm and sexual content (``services/guard/data/toxicity_head.json``,
trained by ``python -m services.guard.training.train_heads``). Both run offline on CPU.

Every category is reported as a whole-text match (``toxicity.<category>``) with its probability.

In the request path the MiniLM categories are a cascade's second stage: a hashed n-gram gate
(``toxicity_ngram.npz``, :mod:`services.guard.ngram`) runs first, and the embedding heads run only when it
does not call the text clean (or the text's embedding is already cached, e.g. because the injection
classifier needed it). A clean text reports the profanity score only. ``/v1/moderations`` always runs
every head (``full=True``).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from services.guard.embeddings import Embedder, EmbeddingHead
from services.guard.ngram import NgramHead
from services.guard.scanners.base import Match
from services.guard.scanners.injection import normalise

HEAD_PATH = Path(__file__).resolve().parent.parent / "data" / "toxicity_head.json"
NGRAM_PATH = Path(__file__).resolve().parent.parent / "data" / "toxicity_ngram.npz"


class _FastProfanity:
    """``profanity_check.predict_prob`` without scikit-learn's per-call overhead (~1 ms of input validation and
    sparse-matrix bookkeeping around five tiny linear models): the same TF-IDF features (the vectorizer's own
    analyzer, vocabulary and idf weights, l2-normalised), each fold's LinearSVC decision value and its sigmoid
    calibration, averaged — exactly what ``CalibratedClassifierCV.predict_proba`` computes."""

    def __init__(self) -> None:
        from profanity_check import profanity_check as pc

        vec = pc.vectorizer
        if vec.binary or vec.sublinear_tf or not vec.use_idf or vec.norm != "l2":
            raise ValueError("unexpected profanity vectorizer settings")
        self.analyze = vec.build_analyzer()
        self.vocabulary: dict[str, int] = dict(vec.vocabulary_)
        self.idf = np.asarray(vec.idf_, dtype=np.float64)
        folds = pc.model.calibrated_classifiers_
        if not all(f.method == "sigmoid" and len(f.calibrators) == 1 for f in folds):
            raise ValueError("unexpected profanity model layout")
        self.coef = np.stack([f.estimator.coef_[0] for f in folds]).T  # (features, folds)
        self.intercept = np.array([f.estimator.intercept_[0] for f in folds])
        self.a = np.array([f.calibrators[0].a_ for f in folds])
        self.b = np.array([f.calibrators[0].b_ for f in folds])

    def decision(self, text: str) -> np.ndarray:
        counts: dict[int, int] = {}
        vocabulary = self.vocabulary
        for token in self.analyze(text):
            i = vocabulary.get(token)
            if i is not None:
                counts[i] = counts.get(i, 0) + 1
        if not counts:
            return self.intercept
        idx = np.fromiter(counts, dtype=np.intp, count=len(counts))
        weights = np.fromiter(counts.values(), dtype=np.float64, count=len(counts)) * self.idf[idx]
        return weights @ self.coef[idx] / np.linalg.norm(weights) + self.intercept

    def __call__(self, texts: list[str]) -> np.ndarray:
        decision = np.array([self.decision(t) for t in texts])
        return (1.0 / (1.0 + np.exp(self.a * decision + self.b))).mean(axis=1)


class ToxicityScanner:
    name = "toxicity"
    spans = False

    def __init__(self, embedder: Embedder | None, head_path: Path = HEAD_PATH, ngram_path: Path = NGRAM_PATH) -> None:
        try:
            self._profanity = _FastProfanity()
        except (AttributeError, ValueError):  # another model layout: the package's own (slower) call
            from profanity_check import predict_prob

            self._profanity = predict_prob
        self.embedder = embedder
        self.head = EmbeddingHead(head_path, embedder.model_id) if embedder is not None else None
        self.gate = NgramHead(ngram_path) if embedder is not None else None

    def scores(self, text: str, full: bool = False) -> dict[str, float]:
        """Probability per category; ``full``: run the MiniLM heads whatever the gate says."""
        if not text.strip():
            return {}
        out = {"profanity": float(self._profanity([text])[0])}
        if self.head is None or self.embedder is None or self.gate is None:
            return out
        gate = self.gate.probability(normalise(text)[0])  # features shared with the injection classifier
        if full or self.embedder.cached(text) or gate >= self.gate.meta["skip_below"]:
            out.update(self.head.predict(self.embedder.embed(text)))
        return out

    def scan(self, text: str) -> list[Match]:
        return [Match(f"toxicity.{cat}", 0, len(text), score) for cat, score in self.scores(text).items()]
