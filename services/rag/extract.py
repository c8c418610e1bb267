"""Text extraction from uploaded files: plain text (and source code, CSV, JSON ...), Markdown, HTML and PDF.

Anything else is refused with :class:`UnsupportedFile`, which the gateway turns into a 400 naming the
supported types. The extracted text is what chunks (and their citation spans) index into.
"""

from __future__ import annotations

import io
import re
from html import unescape
from html.parser import HTMLParser
from pathlib import PurePosixPath

TEXT_EXTENSIONS = frozenset(
    ".txt .text .log .csv .tsv .json .jsonl .xml .yaml .yml .toml .ini .rst .tex .py .js .ts .java .c .h .cc "
    ".cpp .hpp .cs .go .rs .rb .php .sh .sql .css .kt .swift .scala".split()
)
MARKDOWN_EXTENSIONS = frozenset({".md", ".markdown", ".mdx"})
HTML_EXTENSIONS = frozenset({".html", ".htm", ".xhtml"})
PDF_EXTENSIONS = frozenset({".pdf"})
SUPPORTED = "text (.txt, .csv, .json, source code ...), Markdown (.md), HTML (.html) and PDF (.pdf)"


class UnsupportedFile(ValueError):
    """The file's type is not one we extract text from, or it holds no extractable text."""


def detect_format(filename: str, content: bytes, content_type: str = "") -> str:
    """``text``, ``markdown``, ``html`` or ``pdf``; raises :class:`UnsupportedFile` otherwise."""
    ext = PurePosixPath(filename.lower()).suffix
    ctype = content_type.split(";")[0].strip().lower()
    if ext in PDF_EXTENSIONS or content.startswith(b"%PDF-"):
        return "pdf"
    if ext in MARKDOWN_EXTENSIONS or ctype == "text/markdown":
        return "markdown"
    if ext in HTML_EXTENSIONS or ctype in ("text/html", "application/xhtml+xml"):
        return "html"
    if ext in TEXT_EXTENSIONS or (not ext and ctype.startswith("text/")):
        return "text"
    shown = ext or ctype or "unknown"
    raise UnsupportedFile(f"Files of type '{shown}' are not supported. Supported: {SUPPORTED}.")


def _decode(content: bytes) -> str:
    if b"\x00" in content[:8192]:
        raise UnsupportedFile("The file looks binary, not text.")
    for encoding in ("utf-8-sig", "utf-16") if content[:2] in (b"\xff\xfe", b"\xfe\xff") else ("utf-8-sig",):
        try:
            return content.decode(encoding)
        except UnicodeDecodeError:
            continue
    return content.decode("latin-1")  # never fails: Windows-1252-ish text still reads


class _HTMLText(HTMLParser):
    _SKIP = frozenset({"script", "style", "noscript", "template", "svg", "head"})
    _BLOCK = frozenset(
        "p div br li ul ol h1 h2 h3 h4 h5 h6 tr table section article header footer pre blockquote dt dd title".split()
    )

    def __init__(self) -> None:
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0
        self.title = ""
        self._in_title = False

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "title":
            self._in_title = True
        if tag in self._SKIP:
            self.skip += 1
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_endtag(self, tag: str) -> None:
        if tag == "title":
            self._in_title = False
        if tag in self._SKIP:
            self.skip = max(0, self.skip - 1)
        elif tag in self._BLOCK:
            self.parts.append("\n")

    def handle_data(self, data: str) -> None:
        if self._in_title:
            self.title += data
        if not self.skip:
            self.parts.append(data)


def html_to_text(html: str) -> str:
    parser = _HTMLText()
    parser.feed(html)
    parser.close()
    text = unescape("".join(parser.parts))
    if parser.title.strip() and parser.title.strip() not in text:
        text = parser.title.strip() + "\n\n" + text
    return _tidy(text)


def pdf_to_text(content: bytes) -> str:
    from pypdf import PdfReader
    from pypdf.errors import PdfReadError

    try:
        reader = PdfReader(io.BytesIO(content))
        if reader.is_encrypted:
            raise UnsupportedFile("The PDF is encrypted.")
        pages = [page.extract_text() or "" for page in reader.pages]
    except UnsupportedFile:
        raise
    except (PdfReadError, ValueError, KeyError, TypeError) as exc:
        raise UnsupportedFile(f"The PDF could not be read: {exc}") from None
    return _tidy("\n\n".join(p.strip() for p in pages if p.strip()))


def _tidy(text: str) -> str:
    text = text.replace("\r\n", "\n").replace("\r", "\n")
    text = re.sub(r"[ \t\f\v]+\n", "\n", text)
    text = re.sub(r"\n{3,}", "\n\n", text)
    return text.strip()


def extract(filename: str, content: bytes, content_type: str = "") -> tuple[str, str]:
    """(format, text). Raises :class:`UnsupportedFile` for other types and for files with no text."""
    fmt = detect_format(filename, content, content_type)
    if fmt == "pdf":
        text = pdf_to_text(content)
    elif fmt == "html":
        text = html_to_text(_decode(content))
    else:
        text = _tidy(_decode(content))
    if not text.strip():
        raise UnsupportedFile("The file contains no extractable text.")
    return fmt, text
