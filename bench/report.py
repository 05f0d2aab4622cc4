"""Ratios, the markdown table and the plots from a results JSON (bench/results/<machine>.json)."""

from __future__ import annotations

import itertools
import json
from pathlib import Path
from typing import Any

# (key, label, higher is better)
COMPARED = [
    ("request_throughput", "req/s", True),
    ("output_throughput", "output tok/s", True),
    ("p50_ttft_ms", "TTFT p50 ms", False),
    ("p99_ttft_ms", "TTFT p99 ms", False),
    ("p50_tpot_ms", "TPOT p50 ms", False),
    ("p99_tpot_ms", "TPOT p99 ms", False),
    ("p50_e2el_ms", "E2E p50 ms", False),
    ("p99_e2el_ms", "E2E p99 ms", False),
]
TARGET_THROUGHPUT_RATIO = 0.98
TARGET_TTFT_DELTA_MS = 5.0
TARGET_STRUCTURED_RATIO = 0.9


def compare(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Per concurrency: raw, service, ratio = service/raw for each figure (and TTFT p50 delta in ms)."""
    raw = {r["concurrency"]: r for r in results.get("systems", {}).get("raw", {}).get("serving", [])}
    svc = {r["concurrency"]: r for r in results.get("systems", {}).get("service", {}).get("serving", [])}
    rows = []
    for c in sorted(set(raw) & set(svc)):
        row: dict[str, Any] = {"concurrency": c}
        for key, _, _ in COMPARED:
            a, b = raw[c].get(key), svc[c].get(key)
            if a is None or b is None:
                continue
            row[key] = {"raw": a, "service": b, "ratio": (b / a) if a else None}
        if "p50_ttft_ms" in row:
            row["ttft_p50_delta_ms"] = row["p50_ttft_ms"]["service"] - row["p50_ttft_ms"]["raw"]
        tput = row.get("output_throughput", {}).get("ratio")
        row["meets_targets"] = bool(
            tput is not None
            and tput >= TARGET_THROUGHPUT_RATIO
            and row.get("ttft_p50_delta_ms", 1e9) <= TARGET_TTFT_DELTA_MS
        )
        rows.append(row)
    return rows


def _f(x: Any, nd: int = 2) -> str:
    if x is None:
        return "-"
    if isinstance(x, float):
        return f"{x:,.{nd}f}"
    return str(x)


def markdown(results: dict[str, Any]) -> str:
    m = results
    lines = [f"# Service vs raw vLLM: {m['machine']}", ""]
    if m.get("note"):
        lines += [f"> {m['note']}", ""]
    v = m.get("versions", {})
    systems = m.get("systems", {})
    lines += [
        f"- model: `{m.get('model')}`; vLLM {v.get('vllm')}, BentoML {v.get('bentoml')}, torch {v.get('torch')}",
        f"- engine flags (all systems): `{' '.join(m.get('engine_args', []))}`",
        "- process start to ready (s): "
        + ", ".join(f"{name} {s['ready_s']}" for name, s in systems.items() if s.get("ready_s") is not None),
    ]
    if any(s.get("serving") for s in systems.values()):
        lines += _serving_markdown(m)
    lines += stream_markdown(m)
    if any(s.get("structured") for s in systems.values()):
        lines += _structured_markdown(m)
    if systems.get("service", {}).get("tasks"):
        lines += _tasks_markdown(systems["service"]["tasks"])
    for note in m.get("notes", []):
        if note:
            lines += ["", note]
    return "\n".join(lines) + "\n"


def _serving_markdown(m: dict[str, Any]) -> list[str]:
    lines = [
        f"- load: `vllm bench serve`, random prompts {m['load']['input_len']} in / {m['load']['output_len']} out, "
        f"ignore_eos, prompts per level `{m['load']['prompts']}`, streaming /v1/completions",
        f"- targets: service/raw output tok/s >= {TARGET_THROUGHPUT_RATIO}, "
        f"TTFT p50 <= raw + {TARGET_TTFT_DELTA_MS} ms, "
        f"structured constrained/free >= {TARGET_STRUCTURED_RATIO} at concurrency 64",
        "",
        "## Serving (ratio = service / raw)",
        "",
        "| conc | raw tok/s | service tok/s | tok/s ratio | req/s ratio | raw TTFT p50 | service TTFT p50 "
        "| TTFT p50 delta ms | TTFT p99 ratio | TPOT p50 ratio | TPOT p99 ratio | E2E p50 ratio | E2E p99 ratio "
        "| meets targets |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in m.get("comparison", []):
        g = lambda k, part="ratio", r=r: r.get(k, {}).get(part)  # noqa: E731
        lines.append(
            "| "
            + " | ".join(
                [
                    str(r["concurrency"]),
                    _f(g("output_throughput", "raw"), 1),
                    _f(g("output_throughput", "service"), 1),
                    _f(g("output_throughput"), 3),
                    _f(g("request_throughput"), 3),
                    _f(g("p50_ttft_ms", "raw"), 1),
                    _f(g("p50_ttft_ms", "service"), 1),
                    _f(r.get("ttft_p50_delta_ms"), 1),
                    _f(g("p99_ttft_ms"), 3),
                    _f(g("p50_tpot_ms"), 3),
                    _f(g("p99_tpot_ms"), 3),
                    _f(g("p50_e2el_ms"), 3),
                    _f(g("p99_e2el_ms"), 3),
                    "yes" if r.get("meets_targets") else "**no**",
                ]
            )
            + " |"
        )
    for system in ("raw", "service"):
        rows = m.get("systems", {}).get(system, {}).get("serving", [])
        if not rows:
            continue
        lines += [
            "",
            f"### {system}: absolute figures",
            "",
            "| conc | prompts | ok | failed | req/s | out tok/s | TTFT p50 | TTFT p99 | TPOT p50 | TPOT p99 "
            "| E2E p50 | E2E p99 |",
            "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
        ]
        for r in rows:
            lines.append(
                "| "
                + " | ".join(
                    _f(r.get(k), 1 if k.endswith("ms") or k == "output_throughput" else 3)
                    for k in (
                        "concurrency",
                        "num_prompts",
                        "completed",
                        "failed",
                        "request_throughput",
                        "output_throughput",
                        "p50_ttft_ms",
                        "p99_ttft_ms",
                        "p50_tpot_ms",
                        "p99_tpot_ms",
                        "p50_e2el_ms",
                        "p99_e2el_ms",
                    )
                )
                + " |"
            )
    return lines


def _structured_markdown(m: dict[str, Any]) -> list[str]:
    lines = [
        "",
        "## Structured decoding (JSON schema via response_format) vs free, same chat prompts and max_tokens",
        "",
        "| system | conc | prompts | max_tokens | free tok/s | constrained tok/s | constrained/free | free mean tokens "
        "| constrained mean tokens | free p50 ms | constrained p50 ms |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for system in ("raw", "service"):
        for r in m.get("systems", {}).get(system, {}).get("structured", []):
            fr, co = r["free"], r["constrained"]
            lines.append(
                "| "
                + " | ".join(
                    [
                        system,
                        str(r["concurrency"]),
                        str(r["num_prompts"]),
                        str(r["max_tokens"]),
                        _f(fr.get("output_throughput"), 1),
                        _f(co.get("output_throughput"), 1),
                        _f(r.get("ratio"), 3),
                        _f(fr.get("mean_output_tokens"), 1),
                        _f(co.get("mean_output_tokens"), 1),
                        _f(fr.get("p50_latency_ms"), 0),
                        _f(co.get("p50_latency_ms"), 0),
                    ]
                )
                + " |"
            )
    sc = m.get("structured_comparison", [])
    if sc:
        lines += [
            "",
            "Constrained tok/s, service / raw: "
            + ", ".join(
                f"conc {r['concurrency']}: {_f(r.get('constrained_ratio'), 3)} (free: {_f(r.get('free_ratio'), 3)})"
                for r in sc
            ),
        ]
    return lines


def _tasks_markdown(tasks: dict[str, Any]) -> list[str]:
    lines = ["", "## Task endpoints (service only)", ""]
    if tasks:
        lines += [
            "| endpoint | measured | conc | requests | ok | req/s | p50 ms | p99 ms | statuses |",
            "|---|:---:|---:|---:|---:|---:|---:|---:|---|",
        ]
        for name, t in tasks.items():
            unit = "NER requests/s" if name == "extract_entities" else "ViGGO sentences/s"
            if not t.get("measured"):
                lines.append(f"| /{name} ({unit}) | no: {t.get('reason', '')} | | | | | | | |")
                continue
            lines.append(
                f"| /{name} ({unit}) | yes | {t['concurrency']} | {t['requests']} | {t['ok']} | "
                f"{_f(t['request_throughput'], 2)} | {_f(t['p50_latency_ms'], 0)} | {_f(t['p99_latency_ms'], 0)} | "
                f"{t['statuses']} |"
            )
    return lines


def plots(results: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    machine = results["machine"]
    made = []
    for key, name, ylabel in (
        ("output_throughput", "throughput", "output tokens/s"),
        ("p50_ttft_ms", "ttft", "TTFT p50 (ms)"),
    ):
        fig, ax = plt.subplots(figsize=(6, 4))
        for system, style in (("raw", "o-"), ("service", "s--")):
            rows = results.get("systems", {}).get(system, {}).get("serving", [])
            pts = [(r["concurrency"], r[key]) for r in rows if r.get(key) is not None]
            if pts:
                ax.plot(
                    *zip(*pts, strict=True), style, label="raw vllm serve" if system == "raw" else "service (BentoML)"
                )
        ax.set_xscale("log", base=2)
        if key == "p50_ttft_ms":
            ax.set_yscale("log")
        ax.set_xlabel("concurrency")
        ax.set_ylabel(ylabel)
        ax.set_title(f"{ylabel} vs concurrency: {machine}")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
        path = out_dir / f"{machine}-{name}.png"
        fig.tight_layout()
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path)
    return made


def structured_comparison(results: dict[str, Any]) -> list[dict[str, Any]]:
    raw = {r["concurrency"]: r for r in results.get("systems", {}).get("raw", {}).get("structured", [])}
    svc = {r["concurrency"]: r for r in results.get("systems", {}).get("service", {}).get("structured", [])}
    rows = []
    for c in sorted(set(raw) & set(svc)):
        ratios = {}
        for mode in ("constrained", "free"):
            a, b = raw[c][mode].get("output_throughput"), svc[c][mode].get("output_throughput")
            ratios[f"{mode}_ratio"] = b / a if a and b else None
        rows.append({"concurrency": c, **ratios})
    return rows


def stream_paths(results: dict[str, Any]) -> list[tuple[str, str]]:
    """(system, endpoint) of every streaming path measured, raw first."""
    systems = results.get("systems", {})
    order = sorted(systems, key=lambda name: (name != "raw", name))
    return list(dict.fromkeys((name, row["endpoint"]) for name in order for row in systems[name].get("streams", [])))


def stream_comparison(results: dict[str, Any]) -> list[dict[str, Any]]:
    """Each streaming path against raw vLLM's /v1/completions at the same shape and concurrency.

    `ratio` is of the medians; `ratio_min`/`ratio_max` range over the repetitions paired by index (repetition k
    sent the same prompts to every path)."""
    systems = results.get("systems", {})
    raw = {(r["shape"], r["concurrency"]): r for r in systems.get("raw", {}).get("streams", [])}
    rows = []
    for name in sorted(systems):
        if name == "raw":
            continue
        for row in systems[name].get("streams", []):
            base = raw.get((row["shape"], row["concurrency"]))
            if not base:
                continue
            out: dict[str, Any] = {
                "system": name,
                "endpoint": row["endpoint"],
                "path": row["path"],
                "shape": row["shape"],
                "concurrency": row["concurrency"],
            }
            for key in ("output_throughput", "p50_ttft_ms", "p50_itl_ms", "p99_itl_ms", "p50_tpot_ms"):
                a, b = base["median"].get(key), row["median"].get(key)
                if not a or b is None:
                    continue
                paired = [
                    r.get(key) / q.get(key)
                    for r, q in zip(row["reps"], base["reps"], strict=False)
                    if r.get(key) is not None and q.get(key)
                ]
                out[key] = {
                    "raw": a,
                    "path": b,
                    "ratio": b / a,
                    "ratio_min": min(paired, default=None),
                    "ratio_max": max(paired, default=None),
                }
            if "p50_ttft_ms" in out:
                out["ttft_p50_delta_ms"] = out["p50_ttft_ms"]["path"] - out["p50_ttft_ms"]["raw"]
            same = [
                r.get("outputs_sha256") == q.get("outputs_sha256")
                for r, q in zip(row["reps"], base["reps"], strict=False)
            ]
            out["same_outputs_as_raw"] = f"{sum(same)}/{len(same)}"
            tput = out.get("output_throughput", {}).get("ratio")
            out["meets_throughput"] = bool(tput is not None and tput >= TARGET_THROUGHPUT_RATIO)
            out["meets_ttft"] = bool(out.get("ttft_p50_delta_ms", 1e9) <= TARGET_TTFT_DELTA_MS)
            rows.append(out)
    return rows


def _mm(row: dict[str, Any], key: str, nd: int) -> str:
    """'median [min-max]' of a figure over a streaming row's repetitions."""
    med = row.get("median", {}).get(key)
    if med is None:
        return "-"
    lo, hi = row["min"][key], row["max"][key]
    return f"{_f(med, nd)} [{_f(lo, nd)}-{_f(hi, nd)}]" if len(row.get("reps", [])) > 1 else _f(med, nd)


def stream_markdown(results: dict[str, Any]) -> list[str]:
    systems = results.get("systems", {})
    if not any(s.get("streams") for s in systems.values()):
        return []
    st = results.get("load", {}).get("streams", {})
    cmp = {(r["system"], r["endpoint"], r["shape"], r["concurrency"]): r for r in results.get("stream_comparison", [])}
    lines = [
        "",
        "## Streaming paths, one client for all (median [min-max] over repetitions; ratio = path / raw)",
        "",
        f"`bench.stream_load`: shapes `{st.get('shapes')}` (name:input tokens:max output tokens), prompts per level "
        f"`{st.get('prompts')}`, {st.get('repeats')} repetitions, greedy (temperature 0), no ignore_eos (same answers "
        "on every path), tokens counted by tokenizing the answers, "
        f"{st.get('client_procs')} client processes. Targets: tok/s ratio >= {TARGET_THROUGHPUT_RATIO}, "
        f"TTFT p50 <= raw + {TARGET_TTFT_DELTA_MS} ms.",
        "",
        "| shape | conc | path | out tok/s | tok/s ratio [range] | TTFT p50 ms | TTFT delta ms | ITL p50 ms "
        "| ITL p99 ms | TPOT p50 ms | E2E p50 ms | chunks/req | tokens/req | same answers | ok |",
        "|---|---:|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|---:|",
    ]
    by_key = {
        (name, row["endpoint"], row["shape"], row["concurrency"]): row
        for name, sysres in systems.items()
        for row in sysres.get("streams", [])
    }
    shapes = list(dict.fromkeys(k[2] for k in by_key))
    concs = sorted({k[3] for k in by_key})
    for shape in shapes:
        for c in concs:
            for name, endpoint in stream_paths(results):
                row = by_key.get((name, endpoint, shape, c))
                if not row:
                    continue
                comp = cmp.get((name, endpoint, shape, c), {})
                tp = comp.get("output_throughput", {})
                ratio = (
                    f"{_f(tp.get('ratio'), 3)} [{_f(tp.get('ratio_min'), 3)}-{_f(tp.get('ratio_max'), 3)}]"
                    if tp
                    else "1"
                )
                ok = sum(r.get("ok", 0) for r in row["reps"])
                total = sum(r.get("requests", 0) for r in row["reps"])
                lines.append("| " + " | ".join([
                    shape, str(c), f"{name} {row['path']}", _mm(row, "output_throughput", 1),
                    ratio if name == "raw" or not tp or tp["ratio"] >= TARGET_THROUGHPUT_RATIO else f"**{ratio}**",
                    _mm(row, "p50_ttft_ms", 1), _f(comp.get("ttft_p50_delta_ms"), 1), _mm(row, "p50_itl_ms", 2),
                    _mm(row, "p99_itl_ms", 2), _mm(row, "p50_tpot_ms", 2), _mm(row, "p50_e2el_ms", 0),
                    _f(row["median"].get("chunks_per_request"), 1), _f(row["median"].get("mean_output_tokens"), 1),
                    comp.get("same_outputs_as_raw", "-"), f"{ok}/{total}",
                ]) + " |")  # fmt: skip
    return lines


def stream_plots(results: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    systems = results.get("systems", {})
    rows = [(name, row) for name, sysres in systems.items() for row in sysres.get("streams", [])]
    made = []
    for shape in dict.fromkeys(row["shape"] for _, row in rows):
        fig, axes = plt.subplots(1, 3, figsize=(15, 4.2))
        styles = itertools.cycle(("o-", "s--", "^-.", "v:", "D-", "x--", "P-.", "*:"))
        for (name, endpoint), style in zip(stream_paths(results), styles):  # noqa: B905 - styles is endless
            pts = sorted(
                (row["concurrency"], row)
                for n, row in rows
                if n == name and row["endpoint"] == endpoint and row["shape"] == shape and row["median"]
            )
            if not pts:
                continue
            xs = [c for c, _ in pts]
            for ax, key in zip(axes, ("output_throughput", "p50_ttft_ms", "p99_itl_ms"), strict=True):
                med = [r["median"].get(key, float("nan")) for _, r in pts]
                err = [
                    [m - r["min"].get(key, m) for m, (_, r) in zip(med, pts, strict=True)],
                    [r["max"].get(key, m) - m for m, (_, r) in zip(med, pts, strict=True)],
                ]
                ax.errorbar(xs, med, yerr=err, fmt=style, capsize=3, label=f"{name} {pts[0][1]['path']}")
        for ax, ylabel in zip(axes, ("output tokens/s", "TTFT p50 (ms)", "ITL p99 (ms)"), strict=True):
            ax.set_xscale("log", base=2)
            ax.set_xlabel("concurrency")
            ax.set_ylabel(ylabel)
            ax.grid(True, which="both", alpha=0.3)
        axes[1].set_yscale("log")
        axes[0].legend(fontsize=8)
        fig.suptitle(f"{results['machine']}: streaming, shape {shape} (median, bars: min-max)")
        fig.tight_layout()
        path = out_dir / f"{results['machine']}-stream-{shape}.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        made.append(path)
    return made


def write_all(results: dict[str, Any], out_dir: Path) -> list[Path]:
    results["comparison"] = compare(results)
    results["structured_comparison"] = structured_comparison(results)
    results["stream_comparison"] = stream_comparison(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = results["machine"]
    js = out_dir / f"{machine}.json"
    js.write_text(json.dumps(results, indent=1, default=str))
    md = out_dir / f"{machine}.md"
    md.write_text(markdown(results))
    serving = any(s.get("serving") for s in results.get("systems", {}).values())
    return [js, md, *(plots(results, out_dir) if serving else []), *stream_plots(results, out_dir)]
