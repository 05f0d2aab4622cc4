"""Paired streaming comparison: raw vLLM and the service running side by side, levels alternating between them.

`python -m bench` measures one system after the other, so drift between the two runs (GPU clocks, the other
tenant's load, where the burst of a level happens to land in the scheduler's steps) falls between the systems.
At long prompts and concurrency 64 the p50 TTFT of one repetition moves by +-40 ms from the next, which three
repetitions per system cannot tell from a +5 ms front-end cost. Here both servers are up at once (each with its
share of the GPU: `GPU_MEMORY_UTILIZATION`), every pair drives the same fresh prompts through raw's
/v1/completions and each of the service's endpoints, one level at a time (never both at once), raw first in
even pairs and last in odd ones, and the figure reported is the median of the paired differences with a
distribution-free 95% confidence interval (order statistics of the binomial), not a difference of medians.

Most of a TTFT at concurrency 64 is the engine's queue, and its noise is the engine's. So each level also reads
vLLM's own TTFT histogram (`vllm:time_to_first_token_seconds`, arrival at the engine -> first token, sum and
count on /metrics, before and after the level): the client's mean TTFT minus the engine's is what the front end
added on the way in and out (HTTP, routing, middleware, request handling, streaming the first chunk), and its
paired difference is the front end's own TTFT cost, free of the queue's noise.

With `--pids RAW_PID,SERVICE_PID` (the serving processes, on this host) each level also records where those
processes' time went, from the kernel's accounting (bench/sched.py): the event loop thread's CPU, its wait for a CPU
and its context switches per request, the other threads' CPU, and the host's steal: whether a front end that takes
longer works more, waits for a core, or trades the GIL.

    python -m bench.paired --raw URL --service URL --shapes long:512:128 --concurrency 4,64 --pairs 10 \
        --endpoints completions,generate --out results.json [--plot paired.png]
    python -m bench.paired --merge a.json b.json --out both.json [--plot both.png]  # pairs of runs, together

Starts no server: bench/gpu_run.sh `up` starts both on the GPU host (bench/README.md).
"""

from __future__ import annotations

import argparse
import json
import math
import multiprocessing as mp
import re
import statistics
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from bench import load, sched, stream_load
from bench.cli import url_target

TTFT_TARGET_MS = 5.0  # issue 12: the service's TTFT p50 within +5 ms of raw's


def median_interval(values: list[float], level: float = 0.95) -> tuple[float, float] | None:
    """Distribution-free confidence interval of the median: the k-th smallest and k-th largest value, k the
    largest with P(Binomial(n, 1/2) < k) <= (1 - level) / 2. None when n is too small for that level (n < 6)."""
    n = len(values)
    tail = (1 - level) / 2
    below = 0.0  # P(B <= j - 1) as j grows
    k = 0
    for j in range(n + 1):
        if below > tail:
            break
        k = j
        below += math.comb(n, j) / 2**n
    if k < 1:
        return None
    ordered = sorted(values)
    return ordered[k - 1], ordered[n - k]


def _differences(name: str, values: list[float], verdict: bool = True) -> dict[str, Any]:
    """Paired differences under `name`: each (ms), their median, the median's 95% interval and (with `verdict`,
    for a figure the target is about) whether the median is within +5 ms."""
    interval = median_interval(values)
    out = {
        f"{name}_ms": [round(v, 2) for v in values], f"{name}_median_ms": statistics.median(values),
        f"{name}_ci95_ms": list(interval) if interval else None,
    }  # fmt: skip
    if verdict:
        out[f"{name}_within_target"] = statistics.median(values) <= TTFT_TARGET_MS
    return out


def _paired_figure(
    items: list[dict[str, Any]], key: str, prefix: str, pairs_key: str, verdict: bool = True
) -> dict[str, Any]:
    """The level figure `key` where both systems have it: its paired differences (`{prefix}_diff_*`), how many pairs
    (`pairs_key`) and each system's median (`raw_{prefix}_median_ms`, `service_...`); nothing where no pair has it."""
    both = [i for i in items if key in i["raw"] and key in i["service"]]
    if not both:
        return {}
    return {
        **_differences(f"{prefix}_diff", [i["service"][key] - i["raw"][key] for i in both], verdict),
        pairs_key: len(both),
        f"raw_{prefix}_median_ms": statistics.median(i["raw"][key] for i in both),
        f"service_{prefix}_median_ms": statistics.median(i["service"][key] for i in both),
    }


def summarize(pairs: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per (shape, concurrency, service endpoint): the paired TTFT p50 differences (service - raw, ms) and
    output tok/s ratios (service / raw), their medians, the median's 95% interval and the verdict against +5 ms."""
    groups: dict[tuple[str, int, str], list[dict[str, Any]]] = {}
    for pair in pairs:
        for endpoint, fig in pair["service"].items():
            groups.setdefault((pair["shape"], pair["concurrency"], endpoint), []).append(
                {"raw": pair["raw"], "service": fig}
            )
    rows = []
    for (shape, c, endpoint), items in groups.items():
        ok = [i for i in items if not i["raw"].get("failed") and not i["service"].get("failed")]
        diffs = [i["service"]["p50_ttft_ms"] - i["raw"]["p50_ttft_ms"] for i in ok]
        ratios = [i["service"]["output_throughput"] / i["raw"]["output_throughput"] for i in ok]
        row: dict[str, Any] = {
            "shape": shape, "concurrency": c, "endpoint": endpoint, "path": stream_load.ENDPOINTS[endpoint],
            "pairs": len(ok), "failed_pairs": len(items) - len(ok),
        }  # fmt: skip
        if ok:
            row.update(
                _differences("ttft_p50_diff", diffs),
                ttft_p50_diff_mean_ms=statistics.fmean(diffs),
                raw_ttft_p50_median_ms=statistics.median(i["raw"]["p50_ttft_ms"] for i in ok),
                throughput_ratio=[round(r, 4) for r in ratios],
                throughput_ratio_median=statistics.median(ratios),
                same_outputs=sum(i["raw"]["outputs_sha256"] == i["service"]["outputs_sha256"] for i in ok),
            )
            # The front end's own share of TTFT, and of it the way in: to the response's headers (stream_load.figures),
            # with no verdict (the target is TTFT's, not this part's).
            row.update(_paired_figure(ok, "frontend_ttft_ms", "frontend_ttft", "frontend_pairs"))
            row.update(_paired_figure(ok, "mean_headers_ms", "headers", "headers_pairs", verdict=False))
        rows.append(row)
    return rows


def _interval_text(median: float, ci: list[float] | None) -> str:
    return f"{median:+.1f} " + (f"[{ci[0]:+.1f}, {ci[1]:+.1f}]" if ci else "(n < 6)")


def table(rows: list[dict[str, Any]]) -> str:
    lines = [
        "| shape | C | service path | pairs | TTFT p50 diff, median [95% CI] (ms) | raw TTFT p50 (ms) "
        "| front end's TTFT raw / service (ms) | its diff, median [95% CI] (ms) | tok/s ratio, median [min-max] "
        "| within +5 ms (p50 / front end) | of the front end's, to headers raw / service, its diff (ms) |",
        "|---|---:|---|---:|---|---:|---|---|---|---|---|",
    ]
    for r in rows:
        if not r["pairs"]:
            lines.append(f"| {r['shape']} | {r['concurrency']} | {r['path']} | 0 | failed | | | | | | |")
            continue
        headers = "n/a"
        if "raw_headers_median_ms" in r:
            headers = (f"{r['raw_headers_median_ms']:.1f} / {r['service_headers_median_ms']:.1f}, "
                       f"{_interval_text(r['headers_diff_median_ms'], r['headers_diff_ci95_ms'])}")  # fmt: skip
        ratios = r["throughput_ratio"]
        frontend, frontend_diff, frontend_ok = "n/a", "n/a", "n/a"
        if "frontend_pairs" in r:
            frontend = f"{r['raw_frontend_ttft_median_ms']:.1f} / {r['service_frontend_ttft_median_ms']:.1f}"
            frontend_diff = _interval_text(r["frontend_ttft_diff_median_ms"], r["frontend_ttft_diff_ci95_ms"])
            frontend_ok = "yes" if r["frontend_ttft_diff_within_target"] else "no"
        lines.append(
            f"| {r['shape']} | {r['concurrency']} | {r['path']} | {r['pairs']} "
            f"| {_interval_text(r['ttft_p50_diff_median_ms'], r['ttft_p50_diff_ci95_ms'])} "
            f"| {r['raw_ttft_p50_median_ms']:.1f} | {frontend} | {frontend_diff} "
            f"| {r['throughput_ratio_median']:.3f} [{min(ratios):.3f}-{max(ratios):.3f}] "
            f"| {'yes' if r['ttft_p50_diff_within_target'] else 'no'} / {frontend_ok} | {headers} |"
        )
    return "\n".join(lines)


def plot(rows: list[dict[str, Any]], path: Path) -> None:
    """Per level, the paired differences as points, their median as a bar and its 95% interval in gray, the
    +5 ms target as a line: the TTFT p50s on the left, the front end's share of TTFT on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    measured = [r for r in rows if r["pairs"]]
    panels = [("ttft_p50_diff", "TTFT p50, service - raw (ms)"),
              ("frontend_ttft_diff", "front end's TTFT, service - raw (ms)")]  # fmt: skip
    panels = [
        (key, label) for key, label in panels if any(r.get(f"{key}_ms") for r in measured)
    ]  # runs before the split have one
    width = max(5.0, 1.8 * len(measured)) * len(panels)
    fig, axes = plt.subplots(1, len(panels), figsize=(width, 3.8), squeeze=False)
    for ax, (key, label) in zip(axes[0], panels, strict=True):
        for x, r in enumerate(measured):
            diffs = r.get(f"{key}_ms") or []
            spread = [x + 0.25 * (i / max(1, len(diffs) - 1) - 0.5) for i in range(len(diffs))]
            ax.scatter(spread, diffs, s=14, alpha=0.7, color="tab:blue")
            if diffs:
                ax.hlines(r[f"{key}_median_ms"], x - 0.3, x + 0.3, color="black", linewidth=2)
            if r.get(f"{key}_ci95_ms"):
                lo, hi = r[f"{key}_ci95_ms"]
                ax.vlines(x + 0.34, lo, hi, color="gray", linewidth=3)
        ax.axhline(0, color="gray", linewidth=0.8)
        ax.axhline(TTFT_TARGET_MS, color="tab:red", linestyle="--", linewidth=1, label="target +5 ms")
        ax.set_xticks(range(len(measured)))
        ax.set_xticklabels([f"{r['shape']} c={r['concurrency']}\n{r['path']}" for r in measured], fontsize=8)
        ax.set_ylabel(label, fontsize=9)
        ax.legend(fontsize=8)
    fig.suptitle("Paired levels (dots), their median (bar) and its 95% interval (gray)", fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


def frontend_points(pairs: list[dict[str, Any]], endpoint: str = "completions") -> list[tuple[float, float]]:
    """(raw's front-end share, the service's extra over it) per pair of levels that has the split on both."""
    points = []
    for pair in pairs:
        raw, fig = pair["raw"], pair["service"].get(endpoint, {})
        if "frontend_ttft_ms" in raw and "frontend_ttft_ms" in fig:
            points.append((raw["frontend_ttft_ms"], fig["frontend_ttft_ms"] - raw["frontend_ttft_ms"]))
    return points


def plot_by_load(runs: list[tuple[str, list[dict[str, Any]]]], path: Path, endpoint: str = "completions") -> None:
    """The service's extra front-end share of each pair against raw's own share in that pair, one colour per run:
    raw's share is how loaded the host's CPU was at that moment, so this shows whether the extra is a fixed cost
    or grows with the load (it moves with the host from one pair to the next, on both systems together)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, ax = plt.subplots(figsize=(6.4, 4.2))
    for label, pairs in runs:
        points = frontend_points(pairs, endpoint)
        if points:
            xs, ys = [x for x, _ in points], [y for _, y in points]
            ax.scatter(xs, ys, s=18, alpha=0.8, label=f"{label} ({len(points)})")
    ax.axhline(0, color="gray", linewidth=0.8)
    ax.axhline(TTFT_TARGET_MS, color="tab:red", linestyle="--", linewidth=1, label="target +5 ms")
    ax.set_xlabel("raw vLLM's front-end share of TTFT in the pair (ms)", fontsize=9)
    ax.set_ylabel("the service's extra over it (ms)", fontsize=9)
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


_TTFT_SERIES = re.compile(r"^vllm:time_to_first_token_seconds_(sum|count)(?:\{[^}]*\})? (\S+)$", re.M)


def engine_ttft(target: load.Target) -> tuple[float, float] | None:
    """vLLM's TTFT histogram on the server's /metrics, summed over its series: (seconds, requests); None where the
    server has no /metrics (the service with BentoML's metrics off), and the level gets no front-end split."""
    request = urllib.request.Request(target.url + "/metrics", headers=target.headers())
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            text = response.read().decode()
    except urllib.error.HTTPError as exc:
        if exc.code != 404:
            raise
        return None
    totals = {"sum": 0.0, "count": 0.0}
    for kind, value in _TTFT_SERIES.findall(text):
        totals[kind] += float(value)
    return totals["sum"], totals["count"]


def frontend_ttft(
    fig: dict[str, Any],
    records: list[dict[str, Any]],
    before: tuple[float, float] | None,
    after: tuple[float, float] | None,
) -> None:
    """Adds the client's mean TTFT, the engine's mean TTFT over the same requests and their difference (what the
    front end added) to a level's figures; the engine's only when it counted exactly the level's requests."""
    ttfts = stream_load.ttfts_ms(records)
    if not ttfts:
        return
    fig["mean_ttft_ms"] = statistics.fmean(ttfts)
    if before is None or after is None:
        return
    seconds, count = after[0] - before[0], after[1] - before[1]
    fig["engine_ttft_requests"] = count
    if count == len(records) and count == len(ttfts):
        fig["engine_mean_ttft_ms"] = seconds / count * 1000
        fig["frontend_ttft_ms"] = fig["mean_ttft_ms"] - fig["engine_mean_ttft_ms"]


def run(args: argparse.Namespace) -> dict[str, Any]:
    from transformers import AutoTokenizer

    raw, service = url_target(args.raw, args.api_key), url_target(args.service, args.api_key)
    pids = dict(zip((raw.url, service.url), args.pids, strict=True)) if args.pids else {}
    tokenizer = AutoTokenizer.from_pretrained(args.tokenizer or raw.tokenizer)
    endpoints = [e for e in args.endpoints.split(",") if e]
    shapes = stream_load.parse_shapes(args.shapes)
    concurrencies = [int(c) for c in args.concurrency.split(",") if c]
    out: dict[str, Any] = {
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "raw": raw.url, "service": service.url,
        "model": {"raw": raw.model, "service": service.model}, "prompts": args.prompts, "pairs": [],
    }  # fmt: skip
    with mp.get_context("spawn").Pool(args.client_procs) as pool:

        def level(target: load.Target, endpoint: str, prompts: list[str], max_tokens: int, c: int) -> dict[str, Any]:
            pid = pids.get(target.url)
            before = engine_ttft(target)
            times = sched.snapshot(pid) if pid else None  # inside the /metrics reads: they cost the server too
            records = stream_load.drive_level(target, endpoint, prompts, max_tokens, c, pool, args.client_procs)
            where = sched.figures(times, sched.snapshot(times.pid), len(records)) if times else None
            fig = stream_load.figures(records, tokenizer)
            frontend_ttft(fig, records, before, engine_ttft(target))
            if where:
                fig["sched"] = where
            return fig

        stream_load.warm_up(raw, "completions", tokenizer, pool, args.client_procs)
        for endpoint in endpoints:
            stream_load.warm_up(service, endpoint, tokenizer, pool, args.client_procs)
        for i in range(args.pairs):
            for shape in shapes:
                for c in concurrencies:
                    n = load.prompt_count(args.prompts, c)
                    prompts = stream_load.level_prompts(tokenizer, f"paired/{shape.name}/{c}/{i}", n, shape.input_len)
                    raw_first = i % 2 == 0  # alternating order: whatever favours a position hits both alike
                    pair: dict[str, Any] = {"pair": i, "shape": shape.name, "concurrency": c, "raw_first": raw_first}
                    if raw_first:
                        pair["raw"] = level(raw, "completions", prompts, shape.output_len, c)
                    pair["service"] = {e: level(service, e, prompts, shape.output_len, c) for e in endpoints}
                    if not raw_first:
                        pair["raw"] = level(raw, "completions", prompts, shape.output_len, c)
                    out["pairs"].append(pair)
                    args.out.write_text(json.dumps(out, indent=1))
                    print(_pair_line(pair, args.pairs), flush=True)
    out["summary"] = summarize(out["pairs"])
    args.out.write_text(json.dumps(out, indent=1))
    return out


def merge(paths: list[Path]) -> dict[str, Any]:
    """The pairs of earlier runs (their results JSONs) summarized together, as one run of all their pairs would be:
    more pairs against the same two servers narrow the median's interval."""
    runs = [json.loads(path.read_text()) for path in paths]
    pairs = [pair for run in runs for pair in run["pairs"]]
    dates = [date for run in runs for date in run.get("dates") or [run["date"]]]  # a merge of merges too
    return {"merged": [str(path) for path in paths], "dates": dates, "pairs": pairs,
            "summary": summarize(pairs)}  # fmt: skip


def _pair_line(pair: dict[str, Any], pairs: int) -> str:
    raw = pair["raw"]
    parts = [f"[paired] {pair['pair'] + 1}/{pairs} {pair['shape']} c={pair['concurrency']}"]
    parts.append(f"raw TTFT p50 {raw.get('p50_ttft_ms', float('nan')):.1f} ms")
    for endpoint, fig in pair["service"].items():
        if raw.get("failed") or fig.get("failed"):
            parts.append(f"{endpoint}: failed ({fig.get('errors') or raw.get('errors')})")
            continue
        diff = fig["p50_ttft_ms"] - raw["p50_ttft_ms"]
        ratio = fig["output_throughput"] / raw["output_throughput"]
        text = f"{endpoint} {diff:+.1f} ms, tok/s x{ratio:.3f}"
        if "frontend_ttft_ms" in fig and "frontend_ttft_ms" in raw:
            text += f", front end {raw['frontend_ttft_ms']:.1f} -> {fig['frontend_ttft_ms']:.1f} ms"
        if "mean_headers_ms" in fig and "mean_headers_ms" in raw:
            text += f" (to headers {raw['mean_headers_ms']:.1f} -> {fig['mean_headers_ms']:.1f})"
        if "sched" in fig and "sched" in raw:
            a, b = raw["sched"], fig["sched"]
            text += (f", loop CPU {a['loop_cpu_ms']:.2f} -> {b['loop_cpu_ms']:.2f}, its wait for a CPU "
                     f"{a['loop_wait_ms']:.2f} -> {b['loop_wait_ms']:.2f} ms/request, its switches "
                     f"{a['loop_voluntary']:.1f} -> {b['loop_voluntary']:.1f}/request, host steal "
                     f"{a['host_steal_share']:.1%} / {b['host_steal_share']:.1%}")  # fmt: skip
        parts.append(text)
    return ", ".join(parts)


def _pids(text: str) -> tuple[int, int]:
    parts = text.split(",")
    if len(parts) != 2 or not all(p.strip().isdigit() for p in parts):
        raise argparse.ArgumentTypeError(f"expected RAW_PID,SERVICE_PID, got {text!r}")
    return int(parts[0]), int(parts[1])


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench.paired", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument("--raw", help="raw `vllm serve` base URL")
    p.add_argument("--service", help="the service's base URL")
    p.add_argument("--merge", type=Path, nargs="+", help="summarize these earlier results' pairs together instead")
    p.add_argument("--api-key", help="Bearer key of both servers, if any")
    p.add_argument("--pids", type=_pids, help="RAW_PID,SERVICE_PID: the serving processes (here), for bench.sched")
    p.add_argument("--tokenizer", help="tokenizer path for the prompts (default: raw's /v1/models root)")
    p.add_argument("--shapes", default="long:512:128", help="NAME:INPUT_LEN:OUTPUT_LEN,...")
    p.add_argument("--concurrency", default="64")
    p.add_argument("--prompts", default="6*C", help="prompts per level, an expression of C (many: steady state)")
    p.add_argument("--pairs", type=int, default=10)
    p.add_argument("--endpoints", default="completions", help="the service's paths: completions,generate")
    p.add_argument("--client-procs", type=int, default=4)
    p.add_argument("--out", type=Path, required=True, help="results JSON (written after every pair)")
    p.add_argument("--plot", type=Path, help="PNG of the paired differences")
    p.add_argument("--by-load", type=Path, help="PNG of each pair's front-end extra against raw's own share")
    args = p.parse_args(argv)
    if not args.merge and not (args.raw and args.service):
        p.error("--raw and --service are required (or --merge with earlier results)")
    unknown = set(args.endpoints.split(",")) - set(stream_load.ENDPOINTS)
    if unknown:
        p.error(f"--endpoints: unknown {sorted(unknown)}; choose from {sorted(stream_load.ENDPOINTS)}")
    return args


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.merge:
        out = merge(args.merge)
        args.out.write_text(json.dumps(out, indent=1))
    else:
        out = run(args)
    print(table(out["summary"]))
    if args.plot:
        plot(out["summary"], args.plot)
        print(args.plot)
    if args.by_load:
        runs = [(f"{path.parent.name}/{path.stem}", json.loads(path.read_text())["pairs"]) for path in args.merge or []]
        plot_by_load(runs or [("service", out["pairs"])], args.by_load)
        print(args.by_load)
    return 0


if __name__ == "__main__":
    sys.exit(main())
