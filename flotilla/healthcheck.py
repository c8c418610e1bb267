"""``python -m flotilla.healthcheck``: ask a gRPC service's ``grpc.health.v1`` over mutual TLS.

Kubernetes' native ``grpc:`` probes cannot present a client certificate, and every Flotilla gRPC server
requires one, so the chart's readiness probes (and the images' ``HEALTHCHECK``) run this instead. It
reads the same environment as the service it probes — ``--env-prefix FLOTILLA_GUARD_`` takes
``FLOTILLA_GUARD_PORT`` and ``FLOTILLA_GUARD_TLS_CA`` / ``_TLS_CERT`` / ``_TLS_KEY`` — and presents the
service's own certificate, which is valid for client auth and carries ``localhost`` / ``127.0.0.1``.

Exit status: 0 when the service answers SERVING, 1 when it answers anything else or cannot be reached,
2 on a usage error (missing TLS files, no port).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path

import grpc
from grpc_health.v1 import health_pb2, health_pb2_grpc

from flotilla.settings import flotilla_home
from flotilla.tls import TLSFiles, secure_channel

DEFAULT_SERVER_NAME = "localhost"


def tls_from_env(prefix: str, env: Mapping[str, str], service: str | None = None) -> TLSFiles:
    """The TLS files a service with ``prefix`` uses (same defaults as :class:`ServiceSettings`)."""
    certs = flotilla_home() / "certs"
    name = service or prefix.removeprefix("FLOTILLA_").rstrip("_").lower()
    return TLSFiles(
        ca=Path(env.get(f"{prefix}TLS_CA") or certs / "ca.pem"),
        cert=Path(env.get(f"{prefix}TLS_CERT") or certs / f"{name}.pem"),
        key=Path(env.get(f"{prefix}TLS_KEY") or certs / f"{name}.key"),
    )


async def check(
    target: str, tls: TLSFiles, service: str = "", server_name: str | None = DEFAULT_SERVER_NAME, timeout: float = 3.0
) -> str:
    """The serving status name (``SERVING``, ``NOT_SERVING``, ...) or the gRPC error code name."""
    channel = secure_channel(target, tls, server_name)
    try:
        resp = await health_pb2_grpc.HealthStub(channel).Check(
            health_pb2.HealthCheckRequest(service=service), timeout=timeout
        )
        return health_pb2.HealthCheckResponse.ServingStatus.Name(resp.status)
    except grpc.aio.AioRpcError as exc:
        return exc.code().name
    finally:
        await channel.close()


def main(argv: Sequence[str] | None = None, env: Mapping[str, str] | None = None) -> int:
    env = os.environ if env is None else env
    parser = argparse.ArgumentParser(prog="python -m flotilla.healthcheck", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--env-prefix", default="", help="read port and TLS paths like the service, e.g. FLOTILLA_GUARD_"
    )
    parser.add_argument("--target", help="host:port (default 127.0.0.1:<PREFIX>PORT)")
    parser.add_argument("--service", default="", help="health service name ('' = the whole server)")
    parser.add_argument("--server-name", default=DEFAULT_SERVER_NAME, help="name checked against the server cert")
    parser.add_argument("--ca")
    parser.add_argument("--cert")
    parser.add_argument("--key")
    parser.add_argument("--timeout", type=float, default=3.0)
    args = parser.parse_args(argv)

    target = args.target
    if not target:
        port = env.get(f"{args.env_prefix}PORT") if args.env_prefix else None
        if not port:
            print("healthcheck: give --target or --env-prefix with <PREFIX>PORT set", file=sys.stderr)
            return 2
        target = f"127.0.0.1:{port}"
    tls = tls_from_env(args.env_prefix or "FLOTILLA_", env) if args.env_prefix else None
    if args.ca or args.cert or args.key or tls is None:
        if not (args.ca and args.cert and args.key):
            print("healthcheck: give --ca, --cert and --key, or --env-prefix", file=sys.stderr)
            return 2
        tls = TLSFiles(ca=Path(args.ca), cert=Path(args.cert), key=Path(args.key))
    try:
        tls.read()
    except FileNotFoundError as exc:
        print(f"healthcheck: {exc}", file=sys.stderr)
        return 2
    status = asyncio.run(check(target, tls, args.service, args.server_name or None, args.timeout))
    print(f"{target} {args.service or '(server)'}: {status}")
    return 0 if status == "SERVING" else 1


if __name__ == "__main__":
    sys.exit(main())
