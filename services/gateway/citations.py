"""Citations of retrieved context: which file, store and chunk span each ``[n]`` passage came from, and
where the model's answer refers to them.

Chat completions return the passages as the ``citations`` extension field; ``/v1/responses`` turns the
``[n]`` markers the model wrote into OpenAI ``file_citation`` annotations (markers removed, the
annotation's ``index`` at the marker's place in the text).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import TYPE_CHECKING

from services.gateway.protocol import Citation

if TYPE_CHECKING:
    from flotilla.v1 import rag_pb2
    from services.gateway.chat import Prepared

RAG_HEADER = "x-flotilla-rag-chunks"
# [1], [2, 3], [1][2], 【1】 — the forms small models use when told to "cite them as [n]".
MARKER = re.compile(r"\s?[\[【]\s*(\d{1,2}(?:\s*[,;]\s*\d{1,2})*)\s*[\]】]")


def citation(n: int, chunk: rag_pb2.Chunk) -> Citation:
    return Citation(
        index=n, file_id=chunk.file_id, filename=chunk.source, vector_store_id=chunk.vector_store_id,
        chunk_index=chunk.chunk_index, start_char=chunk.start_char, end_char=chunk.end_char, text=chunk.text,
        score=round(float(chunk.score), 6),
    )


def citations_of(prepared: Prepared) -> list[Citation] | None:
    """The context passages of a request that asked for retrieval (possibly none found); None otherwise."""
    if RAG_HEADER not in prepared.headers:
        return None
    return [citation(n, c) for n, c in enumerate(prepared.chunks, 1)]


@dataclass(frozen=True)
class Marker:
    index: int  # where the marker was, in the text with markers removed
    passages: tuple[int, ...]  # the 1-based passage numbers it names


def strip_markers(text: str, passages: int) -> tuple[str, list[Marker]]:
    """Remove ``[n]`` markers that name existing passages (1..passages); others stay as written."""
    out: list[str] = []
    markers: list[Marker] = []
    pos = 0
    length = 0
    for m in MARKER.finditer(text):
        numbers = tuple(int(x) for x in re.split(r"\s*[,;]\s*", m.group(1).strip()))
        if not all(1 <= x <= passages for x in numbers):
            continue
        out.append(text[pos : m.start()])
        length += m.start() - pos
        markers.append(Marker(length, numbers))
        pos = m.end()
    out.append(text[pos:])
    return "".join(out), markers


class MarkerStream:
    """Streamed text with markers removed: holds back a possible marker until it is complete or cannot be
    one, so deltas never show half a ``[1``. ``feed`` returns (text to send, markers completed in it) with
    marker indices counted in the whole cleaned text."""

    _OPEN = ("[", "【")

    def __init__(self, passages: int) -> None:
        self.passages = passages
        self.pending = ""
        self.sent = 0  # characters of cleaned text sent so far

    def feed(self, delta: str, final: bool = False) -> tuple[str, list[Marker]]:
        buf = self.pending + delta
        cut = len(buf)
        if not final:
            # Keep from the last opening bracket (or a trailing space before one) if it may start a marker.
            last = max(buf.rfind(o) for o in self._OPEN)
            if last >= 0 and re.fullmatch(r"[\[【]\s*(\d{1,2}(\s*[,;]\s*\d{0,2})*\s*)?", buf[last:]):
                cut = last - 1 if last > 0 and buf[last - 1] == " " else last
            elif buf.endswith(" "):
                cut = len(buf) - 1  # a space may precede a marker (removed with it)
        ready, self.pending = buf[:cut], buf[cut:]
        clean, markers = strip_markers(ready, self.passages)
        markers = [Marker(self.sent + m.index, m.passages) for m in markers]
        self.sent += len(clean)
        return clean, markers
