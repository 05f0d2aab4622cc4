"""Where two serving processes' event loops spend their time differently, from py-spy's collapsed stacks.

Each file is `py-spy record -f raw` output (a stack per line, frames joined by `;`, its sample count last), such as
`bench/gpu_run.sh paired` writes with SPY_S. Only the event loop's stacks count (those under asyncio's runner: uvicorn
runs its loop there in both servers). py-spy's effective sampling rate differs between processes, so functions are
compared by their inclusive share of each loop's samples; the table lists those whose share differs most, leaving out
the frames of every stack on one side (each process' entry point and runner).

    python -m bench.spy_diff RAW.txt SERVICE.txt [--top 30]
"""

from __future__ import annotations

import argparse
from collections import Counter
from pathlib import Path

LOOP_FRAME = "asyncio/runners.py"


def frame_key(frame: str) -> str:
    """`function (path:line)` -> `function @path`: a function once, whichever line of it was running."""
    function, _, where = frame.partition(" (")
    return f"{function} @{where.rsplit(':', 1)[0]}" if where else function


def loop_functions(path: Path) -> tuple[int, Counter[str]]:
    """The loop's sample count and each function's inclusive samples (a function counted once per stack)."""
    total = 0
    inclusive: Counter[str] = Counter()
    for line in path.read_text().splitlines():
        stack, _, count = line.rpartition(" ")
        frames = stack.split(";")
        if not count.isdigit() or not any(LOOP_FRAME in frame for frame in frames):
            continue
        total += int(count)
        for key in {frame_key(frame) for frame in frames}:
            inclusive[key] += int(count)
    return total, inclusive


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.spy_diff", description=__doc__)
    p.add_argument("raw", type=Path)
    p.add_argument("service", type=Path)
    p.add_argument("--top", type=int, default=30)
    args = p.parse_args(argv)
    (raw_total, raw), (service_total, service) = loop_functions(args.raw), loop_functions(args.service)
    if not raw_total or not service_total:
        p.error("no event-loop stacks in one of the files (py-spy's collapsed format, under asyncio's runner)")
    print(f"event-loop samples: raw {raw_total}, service {service_total}")
    print("| share of the loop's samples, service - raw | raw | service | function |\n|---:|---:|---:|---|")
    shares = {k: (raw[k] / raw_total, service[k] / service_total) for k in raw.keys() | service.keys()}
    # Frames in every stack of one side are how that process started (its CLI, its loop's runner): left out.
    shares = {k: ab for k, ab in shares.items() if max(ab) < 1}
    for key, (a, b) in sorted(shares.items(), key=lambda item: -abs(item[1][1] - item[1][0]))[: args.top]:
        print(f"| {(b - a) * 100:+.1f} pp | {a:.1%} | {b:.1%} | `{key}` |")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
