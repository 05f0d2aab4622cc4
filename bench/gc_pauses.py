"""Garbage-collector pauses on the serving process' event loop under a streaming /v1 load, on this machine: the
service (BentoML's worker) or raw `vllm serve` (its API server), started from a checkout with bench/gcwatch/ first on
PYTHONPATH.

Both freeze their start-up heap out of the collector (vLLM's app lifespan), so under load the old generation holds
only what requests left to outlive two young collections; a full collection scans all of it, on the loop that
streams every token. Counted from the heap's freeze to the load's end: full collections (number, total and longest
pause), young collections over 2 ms, and the old generation's size at the last full one.

    python -m bench.gc_pauses DIR service|raw LABEL [--requests 2000] [--concurrency 32] [--max-tokens 16]
        [--out-dir D]   -> D/LABEL.json, a line in D/summary.txt
"""

from __future__ import annotations

import asyncio
import random
import re
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.cli import first_model
from bench.frontend_cpu import checkout_parser, checkout_server, write_results
from bench.load import auth_headers

GCWATCH = Path(__file__).resolve().parent / "gcwatch"
FROZEN_MIN = 10_000  # a freeze count above this: vLLM's lifespan has frozen the start-up heap
LINE = re.compile(
    r"\[gcwatch\] t=(?P<t>[\d.]+) pid=(?P<pid>\d+) gen=(?P<gen>\d) ms=(?P<ms>[\d.]+) .*frozen=(?P<frozen>\d+)"
)
OLD = re.compile(r"\[gcwatch\] pid=(?P<pid>\d+) old=(?P<old>\d+)")
TOTALS = re.compile(r"\[gcwatch\] t=(?P<t>[\d.]+) pid=(?P<pid>\d+) totals frozen=(?P<frozen>\d+) (?P<gens>.*)")


async def stream_load(
    url: str, model: str, requests: int, concurrency: int, max_tokens: int, api_key: str | None = None, seed: int = 0
) -> int:
    """`requests` streamed /v1/completions, `concurrency` at a time, random prompts; how many answered 200."""
    rng = random.Random(seed)
    ok = 0
    queue: asyncio.Queue[list[int]] = asyncio.Queue()
    for _ in range(requests):
        queue.put_nowait([rng.randrange(1000, 20000) for _ in range(32)])

    async def worker(client: httpx.AsyncClient) -> None:
        nonlocal ok
        while not queue.empty():
            body = {"model": model, "prompt": queue.get_nowait(), "max_tokens": max_tokens, "stream": True,
                    "ignore_eos": True}  # fmt: skip
            async with client.stream("POST", f"{url}/v1/completions", json=body) as response:
                async for _ in response.aiter_bytes():
                    pass
                ok += response.status_code == 200

    limits = httpx.Limits(max_connections=concurrency)
    async with httpx.AsyncClient(timeout=600, limits=limits, headers=auth_headers(api_key)) as client:
        await asyncio.gather(*(worker(client) for _ in range(concurrency)))
    return ok


def pauses(log: str, pid: int, until: float, since: float = 0.0) -> dict[str, Any]:
    """The collector's pauses in `pid` from its heap's freeze to `until` (wall clock), from gcwatch's lines; and
    every collection's, young ones of any length included, between the last totals line before `since` (or the
    first after the freeze) and the last before `until`."""
    full: list[float] = []
    young: list[float] = []
    olds: list[int] = []
    first: list[tuple[int, float]] | None = None
    last: list[tuple[int, float]] | None = None
    counted = False  # whether the last collection line of `pid` was one counted here (its old= line follows it)
    for text in log.splitlines():
        if (line := LINE.search(text)) and int(line["pid"]) == pid:
            counted = int(line["frozen"]) >= FROZEN_MIN and float(line["t"]) <= until
            if counted:
                (full if line["gen"] == "2" else young).append(float(line["ms"]))
        elif (old := OLD.search(text)) and int(old["pid"]) == pid and counted:
            olds.append(int(old["old"]))
        elif (tot := TOTALS.search(text)) and int(tot["pid"]) == pid and int(tot["frozen"]) >= FROZEN_MIN:
            at = float(tot["t"])
            gens = [(int(n), float(ms)) for n, ms in re.findall(r"gen\d=(\d+)/([\d.]+)", tot["gens"])]
            if first is None or at <= since:
                first = gens
            if at <= until:
                last = gens
    figures: dict[str, Any] = {
        "full_collections": len(full),
        "full_ms_total": round(sum(full), 2),
        "full_ms_max": round(max(full, default=0.0), 2),
        "young_over_2ms": len(young),
        "young_ms_total": round(sum(young), 2),
        "old_generation_objects": olds[-1] if olds else None,
    }
    if first is not None and last is not None:
        for gen, ((n0, ms0), (n1, ms1)) in enumerate(zip(first, last, strict=True)):
            figures[f"gen{gen}_collections"] = n1 - n0
            figures[f"gen{gen}_ms"] = round(ms1 - ms0, 2)
    return figures


def measure(
    checkout: Path, kind: str, label: str, requests: int, concurrency: int, max_tokens: int, out_dir: Path
) -> dict[str, Any]:
    with checkout_server(checkout, kind, label, out_dir, GCWATCH, GCWATCH_TYPES="8") as (server, pid, log_path):
        model = first_model(server.url, None)["id"]
        # gcwatch writes a totals line at most once a second: after this pause the load's first collection writes
        # one, the base where no line came between the heap's freeze and the load
        time.sleep(1.5)
        since, started = time.time(), time.monotonic()
        ok = asyncio.run(stream_load(server.url, model, requests, concurrency, max_tokens))
        duration = time.monotonic() - started
        until = time.time()
        time.sleep(1)  # the last lines reach the log
        figures = pauses(log_path.read_text(errors="replace"), pid, until, since)
    data = {"label": label, "system": kind, "checkout": str(checkout), "requests": requests, "ok": ok,
            "concurrency": concurrency, "max_tokens": max_tokens, "duration_s": round(duration, 1),
            **figures}  # fmt: skip
    per_k = 1000 / max(ok, 1)
    line = (
        f"{label} ({kind}): {ok}/{requests} streams of {max_tokens} tokens at {concurrency} in {duration:.0f} s; "
        f"full collections {figures['full_collections']} ({figures['full_collections'] * per_k:.1f} per 1000 "
        f"requests), {figures['full_ms_total']:.1f} ms in all, longest {figures['full_ms_max']:.1f} ms; young over "
        f"2 ms {figures['young_over_2ms']}; old generation at the last full one: {figures['old_generation_objects']}"
    )
    if "gen0_ms" in figures:
        n = max(ok, 1)
        line += "; all collections in the load, per request: " + ", ".join(
            f"gen{g} {figures[f'gen{g}_collections'] / n:.2f} ({figures[f'gen{g}_ms'] * 1000 / n:.0f} us)"
            for g in range(3)
        )
    write_results(out_dir, label, data, [line])
    return data


def main(argv: Sequence[str] | None = None) -> int:
    parser = checkout_parser(__doc__)
    parser.add_argument("--requests", type=int, default=2000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=16, help="tokens per stream: how long each request lives")
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/gc-pauses"))
    args = parser.parse_args(argv)
    measure(args.checkout.resolve(), args.kind, args.label, args.requests, args.concurrency, args.max_tokens,
            args.out_dir)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
