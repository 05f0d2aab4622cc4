"""Admission control under overload: 4x the admission bound at once against a running service.

    python -m bench.overload --url http://127.0.0.1:3000 --max-concurrency 8 [--api-key KEY]

Every request is a streamed /generate (or --path /v1/completions) of --max-tokens tokens, all sent at
once over connections opened beforehand; meanwhile /livez is polled every 50 ms. Prints: how many were
admitted and refused, the refusals' latency (p50/p99; target < 100 ms), whether every admitted request
finished with its full answer, the admitted requests' latency, and /livez's latency during the burst.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from dataclasses import dataclass

import httpx

from bench.load import auth_headers


@dataclass
class Outcome:
    status: int
    latency_ms: float
    finished: bool
    retry_after: str | None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


async def one_request(client: httpx.AsyncClient, path: str, max_tokens: int, model: str) -> Outcome:
    if path == "/generate":
        body: dict[str, object] = {"prompt": "Once upon a time", "max_tokens": max_tokens}
    else:
        body = {"model": model, "prompt": "Once upon a time", "max_tokens": max_tokens, "stream": True}
    started = time.perf_counter()
    async with client.stream("POST", path, json=body) as response:
        text = (await response.aread()).decode(errors="replace")
    latency_ms = (time.perf_counter() - started) * 1000
    finished = response.status_code == 200 and (bool(text) if path == "/generate" else "[DONE]" in text)
    return Outcome(response.status_code, latency_ms, finished, response.headers.get("retry-after"))


async def poll_livez(client: httpx.AsyncClient, stop: asyncio.Event, latencies: list[float]) -> None:
    while not stop.is_set():
        started = time.perf_counter()
        response = await client.get("/livez")
        response.raise_for_status()
        latencies.append((time.perf_counter() - started) * 1000)
        await asyncio.sleep(0.05)


async def run(args: argparse.Namespace) -> None:
    headers = auth_headers(args.api_key)
    total = args.factor * args.max_concurrency
    limits = httpx.Limits(max_connections=total + 4, max_keepalive_connections=total + 4)
    async with httpx.AsyncClient(base_url=args.url, headers=headers, timeout=args.timeout_s, limits=limits) as client:
        model = ""
        if args.path != "/generate":
            model = (await client.get("/v1/models")).json()["data"][0]["id"]
        # Open every connection first, so that the figures are the service's answers, not TCP handshakes.
        await asyncio.gather(*(client.get("/livez") for _ in range(total)))
        stop = asyncio.Event()
        livez: list[float] = []
        poller = asyncio.create_task(poll_livez(client, stop, livez))
        started = time.perf_counter()
        outcomes = await asyncio.gather(*(one_request(client, args.path, args.max_tokens, model) for _ in range(total)))
        wall_s = time.perf_counter() - started
        stop.set()
        await poller

    admitted = [o for o in outcomes if o.status == 200]
    refused = [o for o in outcomes if o.status == 429]
    others = sorted({o.status for o in outcomes} - {200, 429})
    refusal_ms = [o.latency_ms for o in refused]
    print(f"{total} requests at once ({args.factor} x max_concurrency {args.max_concurrency}) to {args.path}, ", end="")
    print(f"max_tokens {args.max_tokens}; burst over in {wall_s:.1f} s")
    print(f"admitted {len(admitted)}, refused 429 {len(refused)}, other statuses {others or 'none'}")
    if refused:
        print(
            f"refusal latency ms: p50 {percentile(refusal_ms, 0.5):.1f}  p99 {percentile(refusal_ms, 0.99):.1f}  "
            f"max {max(refusal_ms):.1f}  (Retry-After: {sorted({o.retry_after for o in refused}, key=str)})"
        )
    print(f"admitted finished with their full answer: {sum(o.finished for o in admitted)}/{len(admitted)}")
    if admitted:
        done_ms = [o.latency_ms for o in admitted]
        print(f"admitted latency ms: p50 {statistics.median(done_ms):.0f}  max {max(done_ms):.0f}")
    print(
        f"/livez during the burst ({len(livez)} probes) ms: p50 {percentile(livez, 0.5):.1f}  "
        f"p99 {percentile(livez, 0.99):.1f}  max {max(livez):.1f}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--url", required=True)
    parser.add_argument("--max-concurrency", type=int, required=True, help="the service's max_concurrency setting")
    parser.add_argument("--factor", type=int, default=4, help="requests sent = factor x max_concurrency")
    parser.add_argument("--path", default="/generate", choices=["/generate", "/v1/completions"])
    parser.add_argument("--max-tokens", type=int, default=32)
    parser.add_argument("--api-key")
    parser.add_argument("--timeout-s", type=float, default=600)
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
