"""Token server throughput and latency at increasing concurrency, vs a sign-only baseline.

`python -m bench.token_throughput` (about 2 minutes with the defaults).

Two single-process uvicorn servers on loopback: `python -m token_server` (the real one, rate limit
raised to its maximum; it also creates each token's room on a loopback livekit-server) and
`python -m bench.baseline_token_app` (signs a fixed token, nothing else). A closed-loop aiohttp
load generator in this process keeps `c` requests in flight for `--seconds` per level (bounded by
`--max-requests` too), alternating servers level by level; each
request is a valid browser-shaped body (fresh room and identity, two FAQs). The first
`--warmup` seconds of each level are not counted. Server and generator CPU are sampled, to show
which side saturates: on 2 cores the Python generator competes with the server it measures.
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import secrets
import sys
import time
import timeit
from datetime import timedelta
from pathlib import Path
from typing import Any

import aiohttp
import psutil
from livekit.api import AccessToken, VideoGrants

from common.metadata import SessionMetadata
from devstack.ports import free_tcp_port
from devstack.service import Service, http_ok
from devstack.stack import Stack, StackConfig
from token_server.models import TokenRequest
from token_server.tokens import mint_token

from .common import FAQS, ResultFile, base_parser, fmt_ms, setup_logging, summarize
from .plotting import plt

logger = logging.getLogger("bench.token_throughput")

NAME = "token_throughput"
SERVERS = {"token_server": "token_server", "baseline": "bench.baseline_token_app"}


def _services(stack: Stack) -> dict[str, Service]:
    services = {}
    for name, module in SERVERS.items():
        port = free_tcp_port()
        env = dict(stack.env)
        env.update(
            {"TOKEN_SERVER_PORT": str(port), "RATE_LIMIT_PER_MINUTE": "100000", "LOG_LEVEL": "INFO"}
        )
        services[name] = Service(
            f"bench-{name}",
            [sys.executable, "-m", module],
            env=env,
            log_path=stack.config.log_dir / f"bench-{name}-{port}.log",
            ready=http_ok(f"http://127.0.0.1:{port}/healthz"),
        )
        services[name].env["BENCH_URL"] = f"http://127.0.0.1:{port}/api/token"
    return services


def _body(i: int, tag: str) -> bytes:
    # A room name is good for one token (the token server creates the room; 409 after that):
    # `tag` keeps the names of each level and server apart.
    metadata = SessionMetadata(language="en", faqs=list(FAQS)).model_dump(mode="json")
    return json.dumps(
        {"room": f"avatar-{tag}{i:08x}", "identity": f"user-{i:08x}", "metadata": metadata}
    ).encode()


async def load_level(
    url: str, concurrency: int, seconds: float, warmup: float, max_requests: int, pid: int
) -> dict[str, Any]:
    counter = itertools.count()
    tag = secrets.token_hex(4)
    latencies: list[float] = []
    statuses: dict[str, int] = {}
    start = time.perf_counter()
    measure_from = start + warmup
    deadline = measure_from + seconds
    server = psutil.Process(pid)
    me = psutil.Process()
    cpu0 = server.cpu_times()
    me0 = me.cpu_times()
    measured_start = measure_from
    headers = {"Content-Type": "application/json"}
    connector = aiohttp.TCPConnector(limit=concurrency)
    async with aiohttp.ClientSession(connector=connector) as http:

        async def worker() -> None:
            while True:
                i = next(counter)
                now = time.perf_counter()
                if now >= deadline or i >= max_requests:
                    return
                t0 = time.perf_counter()
                try:
                    async with http.post(url, data=_body(i, tag), headers=headers) as resp:
                        await resp.read()
                        code = str(resp.status)
                except aiohttp.ClientError as exc:
                    code = type(exc).__name__
                t1 = time.perf_counter()
                if t0 >= measure_from:
                    latencies.append((t1 - t0) * 1e3)
                    statuses[code] = statuses.get(code, 0) + 1

        await asyncio.gather(*(worker() for _ in range(concurrency)))
    end = time.perf_counter()
    window = max(end - measured_start, 1e-6)
    cpu1 = server.cpu_times()
    me1 = me.cpu_times()
    total_time = end - start
    ok = statuses.get("200", 0)
    return {
        "concurrency": concurrency,
        "requests": len(latencies),
        "ok": ok,
        "statuses": statuses,
        "rps": round(ok / window, 1),
        "latency_ms": summarize(latencies, 2),
        "server_cpu_pct": round(
            100 * ((cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)) / total_time, 1
        ),
        "generator_cpu_pct": round(
            100 * ((me1.user + me1.system) - (me0.user + me0.system)) / total_time, 1
        ),
    }


async def run(
    services: dict[str, Service], levels: list[int], seconds: float, warmup: float, max_req: int
) -> dict[str, list[dict[str, Any]]]:
    out: dict[str, list[dict[str, Any]]] = {name: [] for name in services}
    for c in levels:
        for name, service in services.items():
            assert service.pid is not None
            level = await load_level(
                service.env["BENCH_URL"], c, seconds, warmup, max_req, service.pid
            )
            out[name].append(level)
            logger.info(
                "%s c=%d: %.0f req/s, p50 %s ms, p99 %s ms, server CPU %s%%, generator CPU %s%%",
                name,
                c,
                level["rps"],
                level["latency_ms"].get("p50"),
                level["latency_ms"].get("p99"),
                level["server_cpu_pct"],
                level["generator_cpu_pct"],
            )
            await asyncio.sleep(0.5)
    return out


def in_process_costs(rounds: int = 2000) -> dict[str, float]:
    """Per-call ms of the pieces, in this process: what validation and minting alone cost."""
    metadata = SessionMetadata(language="en", faqs=list(FAQS))
    key, secret = "APIbench", "s" * 40
    body = _body(0, "cost")

    def mint() -> None:
        mint_token(
            api_key=key,
            api_secret=secret,
            room="avatar-0000abcd",
            identity="user-0000abcd",
            metadata=metadata,
            ttl=timedelta(minutes=15),
        )

    def fixed() -> None:
        grants = VideoGrants(room_join=True, room="avatar-bench")
        AccessToken(key, secret).with_identity("u").with_grants(grants).to_jwt()

    def validate() -> None:
        TokenRequest.model_validate_json(body)

    return {
        name: round(timeit.timeit(fn, number=rounds) / rounds * 1e3, 4)
        for name, fn in (("mint_token", mint), ("fixed_token", fixed), ("validate", validate))
    }


def plot(data: dict[str, list[dict[str, Any]]], path: Path, title: str) -> None:
    fig, (ax1, ax2) = plt.subplots(1, 2, figsize=(12, 4.5))
    for name, levels in data.items():
        cs = [lv["concurrency"] for lv in levels]
        ax1.plot(cs, [lv["rps"] for lv in levels], "o-", label=name)
        ax2.plot(cs, [lv["latency_ms"].get("p50") for lv in levels], "o-", label=f"{name} p50")
        ax2.plot(cs, [lv["latency_ms"].get("p99") for lv in levels], "x--", label=f"{name} p99")
    for ax in (ax1, ax2):
        ax.set_xscale("log", base=2)
        ax.set_xlabel("concurrent requests in flight")
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8)
    ax1.set_ylabel("successful requests / s")
    ax1.set_title("Throughput (one uvicorn process each)")
    ax2.set_ylabel("latency, ms")
    ax2.set_yscale("log")
    ax2.set_title("Latency")
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)


def main() -> None:
    parser = base_parser("token server throughput vs a sign-only baseline")
    parser.add_argument("--levels", default="1,2,4,8,16,32,64", help="concurrency levels")
    parser.add_argument("--seconds", type=float, default=6.0, help="measured seconds per level")
    parser.add_argument("--warmup", type=float, default=1.0, help="uncounted seconds per level")
    parser.add_argument("--max-requests", type=int, default=20000, help="cap per level")
    args = parser.parse_args()
    setup_logging(args.verbose)
    levels = [int(x) for x in args.levels.split(",")]
    result = ResultFile(
        NAME,
        {
            "levels": levels,
            "seconds_per_level": args.seconds,
            "warmup_s": args.warmup,
            "max_requests_per_level": args.max_requests,
            "generator": "aiohttp closed loop, same machine",
        },
        results_dir=args.results_dir,
    )
    # livekit-server too: the token server creates each token's room there (no agent runs, so
    # the rooms wait for their empty timeout).
    stack = Stack(StackConfig(services=())).start()
    services = _services(stack)
    try:
        for service in services.values():
            service.start(timeout=60)
        data = asyncio.run(run(services, levels, args.seconds, args.warmup, args.max_requests))
    finally:
        for service in services.values():
            service.stop()
        stack.stop()
    costs = in_process_costs()
    result.data = {"levels": data, "in_process_ms": costs}
    for name, rows in data.items():
        best = max(rows, key=lambda r: r["rps"])
        one = rows[0]
        errors = sum(r["requests"] - r["ok"] for r in rows)
        result.row(
            f"token {name}: peak req/s",
            f"{best['rps']:.0f} req/s at c={best['concurrency']}",
            note=f"server CPU {best['server_cpu_pct']}%, generator CPU "
            f"{best['generator_cpu_pct']}%; {errors} non-200",
        )
        result.row(
            f"token {name}: latency at c=1",
            fmt_ms(one["latency_ms"], "p50", "p99"),
        )
        result.row(
            f"token {name}: latency at peak",
            fmt_ms(best["latency_ms"], "p50", "p99"),
        )
    result.row(
        "in-process cost per token (no HTTP)",
        f"validate {costs['validate']} + mint {costs['mint_token']} ms",
        baseline=f"fixed token {costs['fixed_token']} ms",
        note="the rest of the per-request gap is the app's HTTP stack",
    )
    result.finish(lambda path, caption: plot(data, path, caption))


if __name__ == "__main__":
    main()
