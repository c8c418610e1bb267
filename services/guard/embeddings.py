"""The guard's view of all-MiniLM-L6-v2 (the model itself is :class:`flotilla.embeddings.MiniLM`, shared with RAG).

A text is embedded in one batch and scored sentence by sentence (short sentences joined, long ones cut
into windows), so an instruction hidden after benign text is not averaged away; at most ``max_windows``
segments are embedded (half from the head, half from the tail). Embeddings of recent texts are cached,
so the injection and toxicity heads share one model pass and a re-sent chat history costs nothing.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from pathlib import Path

import numpy as np

from flotilla.embeddings import DIM, MiniLM, model_files

__all__ = ["DIM", "Embedder", "EmbeddingHead", "model_files"]

_SENTENCE = re.compile(r"(?<=[.!?。])\s+|\n+")
_MIN_SEGMENT_TOKENS = 8  # shorter sentences ("Hi!", "Thanks.") join the next one


class Embedder:
    def __init__(
        self,
        window: int = 128,
        overlap: int = 16,
        max_windows: int = 16,
        threads: int = 1,
        cache_size: int = 2048,
        verify: bool = True,
        model: MiniLM | None = None,
    ) -> None:
        self.model = model or MiniLM(threads=threads, verify=verify)
        self.model_id = self.model.model_id
        self.tokenizer = self.model.tokenizer
        self.cls_id = self.model.cls_id
        self.sep_id = self.model.sep_id
        self.window = window
        self.overlap = overlap
        self.max_windows = max_windows
        self._cache: OrderedDict[str, np.ndarray] = OrderedDict()
        self._cache_size = cache_size
        self._lock = threading.Lock()

    def _windows(self, ids: list[int]) -> list[list[int]]:
        size = self.window - 2
        step = max(1, size - self.overlap)
        starts = list(range(0, max(1, len(ids) - self.overlap), step)) or [0]
        return [[self.cls_id, *ids[s : s + size], self.sep_id] for s in starts]

    def segments(self, text: str) -> list[list[int]]:
        """Token ids of the text's sentences (short ones joined to the next, long ones windowed), at most
        ``max_windows`` of them (half from the head, half from the tail)."""
        sentences = [s for s in _SENTENCE.split(text) if s.strip()] or [text]
        encoded = [e.ids for e in self.tokenizer.encode_batch(sentences, add_special_tokens=False)]
        rows: list[list[int]] = []
        pending: list[int] = []
        for ids in encoded:
            pending = pending + ids
            if len(pending) >= _MIN_SEGMENT_TOKENS:
                rows.extend(self._windows(pending))
                pending = []
        if pending or not rows:
            rows.extend(self._windows(pending))
        if len(rows) > self.max_windows:
            head = self.max_windows - self.max_windows // 2
            rows = rows[:head] + rows[len(rows) - self.max_windows // 2 :]
        return rows

    def _run(self, rows: list[list[int]]) -> np.ndarray:
        return self.model.run(rows, batch_size=0)  # one batch, as the heads were trained

    def embed_whole(self, text: str) -> np.ndarray:
        """One embedding of the whole text (mean over plain windows): what the heads are trained on."""
        ids = self.tokenizer.encode(text, add_special_tokens=False).ids
        return self._run(self._windows(ids)).mean(axis=0)

    @staticmethod
    def _key(text: str) -> str:
        return hashlib.blake2b(text.encode("utf-8", "surrogatepass"), digest_size=16).hexdigest()

    def cached(self, text: str) -> bool:
        with self._lock:
            return self._key(text) in self._cache

    def clear(self) -> None:
        """Forget every cached embedding (benchmarks that must not be answered from the cache)."""
        with self._lock:
            self._cache.clear()

    def embed(self, text: str) -> np.ndarray:
        """L2-normalised mean-pooled embeddings, one row per segment: shape (segments, 384). Heads take
        the highest score over the rows, so one injected sentence in a long benign text still counts."""
        key = self._key(text)
        with self._lock:
            hit = self._cache.get(key)
            if hit is not None:
                self._cache.move_to_end(key)
                return hit
        out = self._run(self.segments(text))
        with self._lock:
            self._cache[key] = out
            if len(self._cache) > self._cache_size:
                self._cache.popitem(last=False)
        return out


class EmbeddingHead:
    """Binary heads over the embedding, loaded from the JSON the training script writes: a logistic regression
    per label, over the embedding itself or (when the JSON has a ``hidden`` layer) over one ReLU layer of it,
    i.e. a one-hidden-layer perceptron."""

    def __init__(self, path: Path, expected_model_id: str | None = None) -> None:
        import json

        data = json.loads(path.read_text())
        if expected_model_id and data["embedding_model"] != expected_model_id:
            raise RuntimeError(f"{path.name} was trained on {data['embedding_model']}, not {expected_model_id}")
        self.labels: list[str] = data["labels"]
        hidden = data.get("hidden")
        self.hidden_coef = np.asarray(hidden["coef"], dtype=np.float32) if hidden else None  # (units, 384)
        self.hidden_intercept = np.asarray(hidden["intercept"], dtype=np.float32) if hidden else None  # (units,)
        self.coef = np.asarray(data["coef"], dtype=np.float32)  # (labels, 384 or units)
        self.intercept = np.asarray(data["intercept"], dtype=np.float32)  # (labels,)
        self.meta = data

    def predict(self, embeddings: np.ndarray) -> dict[str, float]:
        """Probability per label: the highest over the text's windows."""
        x = embeddings
        if self.hidden_coef is not None:
            x = np.maximum(x @ self.hidden_coef.T + self.hidden_intercept, 0.0)
        logits = x @ self.coef.T + self.intercept
        probs = 1.0 / (1.0 + np.exp(-logits))
        return {label: float(p) for label, p in zip(self.labels, probs.max(axis=0), strict=True)}
