"""Token-aware chunking with overlap (OpenAI's ``static`` strategy: ``max_chunk_size_tokens`` and
``chunk_overlap_tokens``, defaults 800/400), counted in the embedding model's tokens.

Windows of ``max_tokens`` tokens start every ``max_tokens - overlap`` tokens; each chunk is the exact
character span of its tokens in the extracted text, so a citation can point at ``text[start:end]``.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

MIN_CHUNK_TOKENS = 100  # OpenAI's bounds for max_chunk_size_tokens
MAX_CHUNK_TOKENS = 4096


@dataclass(frozen=True, slots=True)
class TextChunk:
    index: int
    start: int  # character offsets into the extracted text
    end: int
    text: str
    tokens: int


def validate(max_tokens: int, overlap: int) -> None:
    """OpenAI's rules: 100 <= max <= 4096 and 0 <= overlap <= max / 2."""
    if not MIN_CHUNK_TOKENS <= max_tokens <= MAX_CHUNK_TOKENS:
        raise ValueError(
            f"max_chunk_size_tokens must be between {MIN_CHUNK_TOKENS} and {MAX_CHUNK_TOKENS}, got {max_tokens}"
        )
    if overlap < 0 or overlap > max_tokens // 2:
        raise ValueError(f"chunk_overlap_tokens must be between 0 and half of max_chunk_size_tokens, got {overlap}")


def chunk_text(text: str, tokenizer: Any, max_tokens: int, overlap: int) -> list[TextChunk]:
    """Split ``text`` into overlapping token windows. ``tokenizer`` is a ``tokenizers.Tokenizer``."""
    if max_tokens <= 0 or not 0 <= overlap < max_tokens:
        raise ValueError("need max_tokens > 0 and 0 <= overlap < max_tokens")
    offsets = tokenizer.encode(text, add_special_tokens=False).offsets
    n = len(offsets)
    if n == 0:
        return []
    step = max_tokens - overlap
    chunks: list[TextChunk] = []
    start_tok = 0
    while True:
        end_tok = min(start_tok + max_tokens, n)
        start, end = offsets[start_tok][0], offsets[end_tok - 1][1]
        chunks.append(TextChunk(len(chunks), start, end, text[start:end], end_tok - start_tok))
        if end_tok >= n:
            return chunks
        start_tok += step
