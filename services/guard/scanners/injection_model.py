"""The learned prompt-injection classifier: a cascade of two heads.

1. ``injection_ngram.npz``: hashed word 1-3 grams (:mod:`services.guard.ngram`), well under a millisecond per
   KB. A text it scores under its ``skip_below`` probability is benign and MiniLM is not run.
2. ``injection_head.json``: a one-hidden-layer perceptron over all-MiniLM-L6-v2 sentence embeddings
   (:mod:`services.guard.embeddings`, :class:`~services.guard.embeddings.EmbeddingHead`), tens of
   milliseconds per KB on one core. It embeds only the sentence segments the first stage did not call
   benign (the whole text when no single segment stands out), so a long document with one suspicious
   sentence costs one sentence's pass. The score combines both heads' probabilities
   (each the highest over the segments it scored): a logistic regression over their logits fitted on
   held-out training folds (``stack`` in the head's training metadata), or their mean where training
   found the stack no better.

The second stage can be deferred (:meth:`InjectionClassifier.scan_fast`; ``ScanInput`` with ``defer_slow``,
then ``ScanDeferred``) so that it runs while the model already reads the prompt, off the request's critical path.

Both heads, the cascade's ``skip_below`` and the stack (picked by cross-validation on the training set only) are
written by ``python -m services.guard.training.train_heads`` from the corpus under
``services/guard/data/corpus``. The scanner reports one whole-text match with the probability as its score.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from services.guard.embeddings import Embedder, EmbeddingHead
from services.guard.ngram import NgramHead, segments
from services.guard.scanners.base import Match
from services.guard.scanners.injection import normalise

DATA = Path(__file__).resolve().parent.parent / "data"
HEAD_PATH = DATA / "injection_head.json"
NGRAM_PATH = DATA / "injection_ngram.npz"


def _logit(p: float) -> float:
    p = min(max(p, 1e-6), 1 - 1e-6)
    return float(np.log(p / (1 - p)))


class InjectionClassifier:
    name = "injection"
    spans = False

    def __init__(
        self, embedder: Embedder | None, head_path: Path = HEAD_PATH, ngram_path: Path = NGRAM_PATH,
        cascade: bool = True,
    ) -> None:  # fmt: skip
        self.embedder = embedder
        self.head = EmbeddingHead(head_path, embedder.model_id) if embedder is not None else None
        self.ngram = NgramHead(ngram_path)
        # cascade=False: MiniLM scores every text (for measurements); no embedder: the n-gram head alone.
        self.skip_below = float(self.ngram.meta["skip_below"]) if cascade else -1.0
        self.minilm_runs = 0  # texts that went on to the MiniLM stage (for the benchmark)
        # How the two heads' probabilities combine (fitted on held-out training folds); None: their mean.
        self.stack: dict | None = self.head.meta.get("training", {}).get("stack") if self.head is not None else None

    def fast(self, text: str) -> tuple[float, list[str] | None]:
        """The first stage: the n-gram probability, and the segments the second stage must embed (None when the
        first stage's probability is the answer)."""
        norm, _ = normalise(text)  # homoglyphs and invisible characters do not hide words from the n-grams
        segs = segments(norm)
        probs = self.ngram.probabilities(norm)
        fast = float(probs.max())
        if self.head is None or self.embedder is None or fast < self.skip_below:
            return fast, None
        if len(segs) == 1:
            return fast, [norm]
        return fast, [s for s, p in zip(segs, probs, strict=True) if p >= self.skip_below]

    def slow(self, fast: float, suspicious: list[str]) -> float:
        """The second stage: MiniLM over the suspicious segments, combined with the first stage's probability."""
        assert self.head is not None and self.embedder is not None
        self.minilm_runs += 1
        slow = self.head.predict(np.concatenate([self.embedder.embed(s) for s in suspicious]))["injection"]
        if self.stack is None:
            return (fast + slow) / 2
        z = self.stack["w_fast"] * _logit(fast) + self.stack["w_slow"] * _logit(slow) + self.stack["bias"]
        return float(1.0 / (1.0 + np.exp(-z)))

    def probability(self, text: str) -> float:
        if not text.strip():
            return 0.0
        fast, suspicious = self.fast(text)
        return fast if suspicious is None else self.slow(fast, suspicious)

    def _match(self, text: str, probability: float) -> list[Match]:
        return [Match("injection.classifier", 0, len(text), probability)]

    def scan(self, text: str) -> list[Match]:
        return self._match(text, self.probability(text)) if text.strip() else []

    def scan_fast(self, text: str) -> list[Match] | None:
        """:meth:`scan` when the first stage decides; None when the text needs the second stage (which the guard
        can then run off the request's critical path: ``ScanDeferred``)."""
        if not text.strip():
            return []
        fast, suspicious = self.fast(text)
        return self._match(text, fast) if suspicious is None else None
