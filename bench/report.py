"""Ratios, the markdown table and the plots from a results JSON (bench/results/<machine>.json)."""

from __future__ import annotations

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
        row["meets_targets"] = bool(tput is not None and tput >= TARGET_THROUGHPUT_RATIO
                                    and row.get("ttft_p50_delta_ms", 1e9) <= TARGET_TTFT_DELTA_MS)
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
    lines += [
        f"- model: `{m.get('model')}`; vLLM {v.get('vllm')}, BentoML {v.get('bentoml')}, torch {v.get('torch')}",
        f"- load: `vllm bench serve`, random prompts {m['load']['input_len']} in / {m['load']['output_len']} out, "
        f"ignore_eos, prompts per level `{m['load']['prompts']}`, streaming /v1/completions",
        f"- engine flags (both): `{' '.join(m.get('engine_args', []))}`",
        f"- targets: service/raw output tok/s >= {TARGET_THROUGHPUT_RATIO}, TTFT p50 <= raw + {TARGET_TTFT_DELTA_MS} ms, "
        f"structured constrained/free >= {TARGET_STRUCTURED_RATIO} at concurrency 64",
        "",
        "## Serving (ratio = service / raw)",
        "",
        "| conc | raw tok/s | service tok/s | tok/s ratio | req/s ratio | raw TTFT p50 | service TTFT p50 | TTFT p50 delta ms "
        "| TTFT p99 ratio | TPOT p50 ratio | TPOT p99 ratio | E2E p50 ratio | E2E p99 ratio | meets targets |",
        "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|:---:|",
    ]
    for r in m.get("comparison", []):
        g = lambda k, part="ratio": r.get(k, {}).get(part)  # noqa: E731
        lines.append("| " + " | ".join([
            str(r["concurrency"]), _f(g("output_throughput", "raw"), 1), _f(g("output_throughput", "service"), 1),
            _f(g("output_throughput"), 3), _f(g("request_throughput"), 3), _f(g("p50_ttft_ms", "raw"), 1),
            _f(g("p50_ttft_ms", "service"), 1), _f(r.get("ttft_p50_delta_ms"), 1), _f(g("p99_ttft_ms"), 3),
            _f(g("p50_tpot_ms"), 3), _f(g("p99_tpot_ms"), 3), _f(g("p50_e2el_ms"), 3), _f(g("p99_e2el_ms"), 3),
            "yes" if r.get("meets_targets") else "**no**",
        ]) + " |")
    for system in ("raw", "service"):
        rows = m.get("systems", {}).get(system, {}).get("serving", [])
        if not rows:
            continue
        lines += ["", f"### {system}: absolute figures", "",
                  "| conc | prompts | ok | failed | req/s | out tok/s | TTFT p50 | TTFT p99 | TPOT p50 | TPOT p99 | E2E p50 | E2E p99 |",
                  "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
        for r in rows:
            lines.append("| " + " | ".join(_f(r.get(k), 1 if k.endswith("ms") or k == "output_throughput" else 3) for k in (
                "concurrency", "num_prompts", "completed", "failed", "request_throughput", "output_throughput",
                "p50_ttft_ms", "p99_ttft_ms", "p50_tpot_ms", "p99_tpot_ms", "p50_e2el_ms", "p99_e2el_ms")) + " |")
    lines += ["", "## Structured decoding (JSON schema via response_format) vs free, same chat prompts and max_tokens", "",
              "| system | conc | prompts | max_tokens | free tok/s | constrained tok/s | constrained/free | free mean tokens "
              "| constrained mean tokens | free p50 ms | constrained p50 ms |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for system in ("raw", "service"):
        for r in m.get("systems", {}).get(system, {}).get("structured", []):
            fr, co = r["free"], r["constrained"]
            lines.append("| " + " | ".join([system, str(r["concurrency"]), str(r["num_prompts"]), str(r["max_tokens"]),
                _f(fr.get("output_throughput"), 1), _f(co.get("output_throughput"), 1), _f(r.get("ratio"), 3),
                _f(fr.get("mean_output_tokens"), 1), _f(co.get("mean_output_tokens"), 1),
                _f(fr.get("p50_latency_ms"), 0), _f(co.get("p50_latency_ms"), 0)]) + " |")
    sc = m.get("structured_comparison", [])
    if sc:
        lines += ["", "Constrained tok/s, service / raw: " + ", ".join(
            f"conc {r['concurrency']}: {_f(r.get('constrained_ratio'), 3)} (free: {_f(r.get('free_ratio'), 3)})" for r in sc)]
    lines += ["", "## Task endpoints (service only)", ""]
    tasks = m.get("systems", {}).get("service", {}).get("tasks")
    if not tasks:
        lines.append("not measured (skipped)")
    else:
        lines += ["| endpoint | measured | conc | requests | ok | req/s | p50 ms | p99 ms | statuses |",
                  "|---|:---:|---:|---:|---:|---:|---:|---:|---|"]
        for name, t in tasks.items():
            unit = "NER requests/s" if name == "extract_entities" else "ViGGO sentences/s"
            if not t.get("measured"):
                lines.append(f"| /{name} ({unit}) | no: {t.get('reason', '')} | | | | | | | |")
                continue
            lines.append(f"| /{name} ({unit}) | yes | {t['concurrency']} | {t['requests']} | {t['ok']} | "
                         f"{_f(t['request_throughput'], 2)} | {_f(t['p50_latency_ms'], 0)} | {_f(t['p99_latency_ms'], 0)} | "
                         f"{t['statuses']} |")
    for note in m.get("notes", []):
        if note:
            lines += ["", note]
    return "\n".join(lines) + "\n"


def plots(results: dict[str, Any], out_dir: Path) -> list[Path]:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    machine = results["machine"]
    made = []
    for key, name, ylabel in (("output_throughput", "throughput", "output tokens/s"),
                              ("p50_ttft_ms", "ttft", "TTFT p50 (ms)")):
        fig, ax = plt.subplots(figsize=(6, 4))
        for system, style in (("raw", "o-"), ("service", "s--")):
            rows = results.get("systems", {}).get(system, {}).get("serving", [])
            pts = [(r["concurrency"], r[key]) for r in rows if r.get(key) is not None]
            if pts:
                ax.plot(*zip(*pts), style, label="raw vllm serve" if system == "raw" else "service (BentoML)")
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
        def ratio(mode: str) -> float | None:
            a, b = raw[c][mode].get("output_throughput"), svc[c][mode].get("output_throughput")
            return b / a if a and b else None
        rows.append({"concurrency": c, "constrained_ratio": ratio("constrained"), "free_ratio": ratio("free")})
    return rows


def write_all(results: dict[str, Any], out_dir: Path) -> list[Path]:
    results["comparison"] = compare(results)
    results["structured_comparison"] = structured_comparison(results)
    out_dir.mkdir(parents=True, exist_ok=True)
    machine = results["machine"]
    js = out_dir / f"{machine}.json"
    js.write_text(json.dumps(results, indent=1, default=str))
    md = out_dir / f"{machine}.md"
    md.write_text(markdown(results))
    return [js, md, *plots(results, out_dir)]
