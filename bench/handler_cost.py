"""What vLLM's output handler costs in the serving process, per output and per call: the service against raw vLLM.

bench/handlerwatch/ (first on a server's PYTHONPATH) totals the calls, outputs, wall and thread CPU time of the
handler's three steps in every process; this reads them back for the serving process (the one whose
`process_outputs` got the outputs) between two points of a load. The same vLLM code runs in both systems, so a
difference per output is the process' doing (its heap, what else its loop and threads run), not more work.

    python -m bench.handler_cost run DIR service|raw LABEL [--requests 400] [--concurrency 32] [--max-tokens 64]
        [--out-dir D]   -> D/LABEL.json, a line in D/summary.txt (this machine: a checkout started, streamed to)
    python -m bench.handler_cost compare RAW_LOG SERVICE_LOG [--out FILE.json]
        (the servers' logs of a GPU run, `HANDLERWATCH=1 bash bench/gpu_run.sh up`: each whole log's totals)
"""

from __future__ import annotations

import argparse
import asyncio
import json
import re
import sys
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from bench.cli import first_model
from bench.frontend_cpu import checkout_parser, checkout_server, write_results
from bench.gc_pauses import stream_load

HANDLERWATCH = Path(__file__).resolve().parent / "handlerwatch"
STEPS = ("decode", "process_outputs", "record")
LINE = re.compile(r"\[handlerwatch\] t=(?P<t>[\d.]+) pid=(?P<pid>\d+) (?P<steps>.*)")
STEP = re.compile(r"(?P<name>\w+)=(?P<calls>\d+)/(?P<items>\d+)/(?P<wall>[\d.]+)/(?P<cpu>[\d.]+)")


def lines(log: str) -> dict[int, list[tuple[float, dict[str, list[float]]]]]:
    """Each process' totals lines, in order: (wall clock, step -> [calls, items, wall ms, cpu ms])."""
    found: dict[int, list[tuple[float, dict[str, list[float]]]]] = {}
    for text in log.splitlines():
        if (line := LINE.search(text)) is None:
            continue
        steps = {m["name"]: [float(m[k]) for k in ("calls", "items", "wall", "cpu")] for m in STEP.finditer(text)}
        found.setdefault(int(line["pid"]), []).append((float(line["t"]), steps))
    return found


def serving_process(log: str) -> int:
    """The process whose `process_outputs` got the outputs (the engine core's decodes requests, and none)."""
    totals = {pid: found[-1][1].get("process_outputs", [0, 0])[1] for pid, found in lines(log).items()}
    if not totals or max(totals.values()) == 0:
        raise ValueError("no [handlerwatch] line with outputs: was bench/handlerwatch first on the server's path?")
    return max(totals, key=lambda pid: totals[pid])


def cost(log: str, pid: int, since: float = 0.0, until: float = float("inf")) -> dict[str, Any]:
    """Each step's calls, outputs and time in `pid` between its last line at or before `since` (its first line if
    none) and its last line at or before `until`; per call, and per output for all of them."""
    found = lines(log).get(pid, [])
    inside = [(t, steps) for t, steps in found if t <= until]
    if len(inside) < 2:
        raise ValueError(f"fewer than two [handlerwatch] lines of pid {pid} before {until}")
    base = [steps for t, steps in inside if t <= since] or [inside[0][1]]
    first, last = base[-1], inside[-1][1]
    outputs = last["process_outputs"][1] - first["process_outputs"][1]
    figures: dict[str, Any] = {"pid": pid, "outputs": int(outputs)}
    for name in STEPS:
        calls, _, wall, cpu = (b - a for a, b in zip(first.get(name, [0] * 4), last.get(name, [0] * 4), strict=True))
        figures[name] = {
            "calls": int(calls),
            "wall_ms": round(wall, 3),
            "cpu_ms": round(cpu, 3),
            "wall_us_per_call": round(wall * 1000 / calls, 2) if calls else None,
            "wall_us_per_output": round(wall * 1000 / outputs, 3) if outputs else None,
            "cpu_us_per_output": round(cpu * 1000 / outputs, 3) if outputs else None,
        }
    figures["outputs_per_step"] = round(outputs / figures["process_outputs"]["calls"], 2) if outputs else None
    return figures


def describe(name: str, figures: dict[str, Any]) -> str:
    parts = [f"{name}: {figures['outputs']} outputs, {figures['outputs_per_step']} a step"]
    for step in STEPS:
        f = figures[step]
        per_output = f"{f['wall_us_per_output']} us an output (cpu {f['cpu_us_per_output']})"
        parts.append(f"{step} {per_output}, {f['wall_us_per_call']} us a call")
    return "; ".join(parts)


def measure(
    checkout: Path, kind: str, label: str, requests: int, concurrency: int, max_tokens: int, out_dir: Path
) -> dict[str, Any]:
    with checkout_server(checkout, kind, label, out_dir, HANDLERWATCH) as (server, pid, log_path):
        model = first_model(server.url, None)["id"]
        asyncio.run(stream_load(server.url, model, concurrency, concurrency, 4))  # a warm-up
        # The base: a line a second at most, so the warm-up's last one may come before its last outputs. After a
        # pause, one more request of one token writes a line (its only call) that holds all of them.
        time.sleep(1.5)
        asyncio.run(stream_load(server.url, model, 1, 1, 1))
        since, started = time.time(), time.monotonic()
        ok = asyncio.run(stream_load(server.url, model, requests, concurrency, max_tokens, seed=1))
        duration = time.monotonic() - started
        until = time.time()
        time.sleep(1)
        figures = cost(log_path.read_text(errors="replace"), pid, since, until)
    data = {"label": label, "system": kind, "checkout": str(checkout), "requests": requests, "ok": ok,
            "concurrency": concurrency, "max_tokens": max_tokens, "duration_s": round(duration, 1),
            **figures}  # fmt: skip
    head = f"{label} ({kind}): {ok}/{requests} streams of {max_tokens} tokens at {concurrency} in {duration:.0f} s"
    write_results(out_dir, label, data, [describe(head, figures)])
    return data


def compare(raw_log: str, service_log: str) -> dict[str, Any]:
    """Each whole log's totals (a GPU run's servers, under the same paired load) and the service/raw ratios."""
    raw = cost(raw_log, serving_process(raw_log))
    service = cost(service_log, serving_process(service_log))
    ratios = {
        step: round(service[step]["wall_us_per_output"] / raw[step]["wall_us_per_output"], 3)
        for step in STEPS
        if service[step]["wall_us_per_output"] and raw[step]["wall_us_per_output"]
    }
    return {"raw": raw, "service": service, "service_over_raw_per_output": ratios}


def main(argv: Sequence[str] | None = None) -> int:
    args = list(sys.argv[1:] if argv is None else argv)
    if args[:1] == ["compare"]:
        parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
        parser.add_argument("raw_log", type=Path)
        parser.add_argument("service_log", type=Path)
        parser.add_argument("--out", type=Path)
        parsed = parser.parse_args(args[1:])
        result = compare(parsed.raw_log.read_text(errors="replace"), parsed.service_log.read_text(errors="replace"))
        print(describe("raw", result["raw"]))
        print(describe("service", result["service"]))
        print("service / raw, wall per output:", result["service_over_raw_per_output"])
        if parsed.out:
            parsed.out.write_text(json.dumps(result, indent=1))
        return 0
    if args[:1] != ["run"]:
        print(__doc__, file=sys.stderr)
        return 2
    parser = checkout_parser(__doc__)
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--max-tokens", type=int, default=64)
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/handler-cost"))
    parsed = parser.parse_args(args[1:])
    measure(parsed.checkout.resolve(), parsed.kind, parsed.label, parsed.requests, parsed.concurrency,
            parsed.max_tokens, parsed.out_dir)  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
