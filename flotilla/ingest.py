"""``flotilla ingest PATH… --store NAME``: upload documents to a vector store through the gateway's OpenAI API.

Folders are walked recursively for the types the RAG service extracts (text, Markdown, HTML, PDF). The
store named ``NAME`` is reused when it exists (else created); each file is uploaded with the stock OpenAI
SDK, attached, and ingestion is followed to the end with a progress bar. Exit status 1 when a file failed.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from pathlib import Path
from typing import Any

from flotilla.settings import flotilla_home
from services.rag.extract import HTML_EXTENSIONS, MARKDOWN_EXTENSIONS, PDF_EXTENSIONS, TEXT_EXTENSIONS

SUPPORTED = TEXT_EXTENSIONS | MARKDOWN_EXTENSIONS | HTML_EXTENSIONS | PDF_EXTENSIONS


def collect(paths: list[str]) -> list[Path]:
    """Supported files under the given paths (files named explicitly are kept whatever their type)."""
    out: list[Path] = []
    for raw in paths:
        path = Path(raw)
        if path.is_dir():
            out.extend(p for p in sorted(path.rglob("*"))
                       if p.is_file() and p.suffix.lower() in SUPPORTED and not any(
                           part.startswith(".") for part in p.relative_to(path).parts))
        elif path.is_file():
            out.append(path)
        else:
            raise FileNotFoundError(raw)
    return list(dict.fromkeys(out))


def default_api_key() -> str:
    for var in ("FLOTILLA_API_KEY", "OPENAI_API_KEY"):
        if os.environ.get(var):
            return os.environ[var]
    dev = flotilla_home() / "dev-api-key"  # written by `make run`
    return dev.read_text().strip() if dev.exists() else "none"


def find_or_create_store(client: Any, name: str, chunking: dict[str, Any] | None) -> Any:
    for store in client.vector_stores.list(limit=100):
        if store.name == name:
            return store
    kwargs = {"chunking_strategy": chunking} if chunking else {}
    return client.vector_stores.create(name=name, **kwargs)


def ingest(client: Any, files: list[Path], store_name: str, chunking: dict[str, Any] | None = None,
           wait: bool = True, poll_s: float = 0.5, progress: bool = True) -> dict[str, Any]:
    """Upload and attach ``files``; with ``wait``, poll until every attachment leaves ``in_progress``."""
    from tqdm import tqdm

    store = find_or_create_store(client, store_name, chunking)
    attached: dict[str, Path] = {}
    failed: dict[str, str] = {}
    extra = {"chunking_strategy": chunking} if chunking else {}
    with tqdm(total=len(files), desc="upload", unit="file", disable=not progress) as bar:
        for path in files:
            try:
                with path.open("rb") as fh:
                    uploaded = client.files.create(file=(path.name, fh), purpose="assistants")
                client.vector_stores.files.create(vector_store_id=store.id, file_id=uploaded.id, **extra)
                attached[uploaded.id] = path
            except Exception as exc:  # the API's reason (unsupported type, too large) is shown; the rest go on
                failed[str(path)] = getattr(exc, "message", None) or str(exc)
            bar.update(1)
    status: dict[str, str] = {}
    if wait and attached:
        pending = set(attached)
        with tqdm(total=len(attached), desc="ingest", unit="file", disable=not progress) as bar:
            while pending:
                for file_id in list(pending):
                    f = client.vector_stores.files.retrieve(file_id, vector_store_id=store.id)
                    if f.status != "in_progress":
                        pending.discard(file_id)
                        status[file_id] = f.status
                        if f.status != "completed":
                            failed[str(attached[file_id])] = f.last_error.message if f.last_error else f.status
                        bar.update(1)
                if pending:
                    time.sleep(poll_s)
    return {"vector_store_id": store.id, "uploaded": len(attached), "failed": failed,
            "completed": sum(1 for s in status.values() if s == "completed")}


def main(args: argparse.Namespace) -> int:
    from openai import OpenAI

    files = collect(args.paths)
    if not files:
        print("no supported files found", file=sys.stderr)
        return 1
    chunking = None
    if args.chunk_size:
        chunking = {"type": "static", "static": {"max_chunk_size_tokens": args.chunk_size,
                                                 "chunk_overlap_tokens": args.chunk_overlap}}
    client = OpenAI(base_url=args.base_url, api_key=args.api_key or default_api_key())
    result = ingest(client, files, args.store, chunking, wait=not args.no_wait, progress=not args.quiet)
    print(f"vector store {args.store}: {result['vector_store_id']} — {result['uploaded']} uploaded, "
          f"{result['completed']} ingested, {len(result['failed'])} failed")
    for path, reason in result["failed"].items():
        print(f"  failed: {path}: {reason}", file=sys.stderr)
    return 1 if result["failed"] else 0


def add_parser(sub: Any) -> None:
    p = sub.add_parser("ingest", help="upload documents into a vector store through the gateway")
    p.add_argument("paths", nargs="+", help="files or folders (walked recursively)")
    p.add_argument("--store", required=True, help="vector store name (created when missing)")
    p.add_argument("--base-url", default=os.environ.get("OPENAI_BASE_URL", "http://127.0.0.1:8000/v1"))
    p.add_argument("--api-key", default="", help="default: $FLOTILLA_API_KEY, $OPENAI_API_KEY or the dev key")
    p.add_argument("--chunk-size", type=int, default=0, help="max tokens per chunk (default: the service's 800)")
    p.add_argument("--chunk-overlap", type=int, default=0, help="overlap tokens with --chunk-size")
    p.add_argument("--no-wait", action="store_true", help="do not wait for ingestion to finish")
    p.add_argument("--quiet", action="store_true", help="no progress bars")
    p.set_defaults(func=main)
