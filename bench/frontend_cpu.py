"""The front end's CPU time per request, on this machine: the service (BentoML's worker process) or raw `vllm serve`
(its API server process), started from a checkout, driven by this checkout's `bench.task_baseline` at concurrency 8
(`--cpu-pid`), after an idle period that gives the process' CPU rate with no requests.

On a CPU engine a request takes seconds, so the idle rate (vLLM's stat logger, BentoML's metrics, the engine client's
polling) is part of the gross figure; the net figure subtracts it per request. Both systems get the service's engine
flags (`serving.engine.vllm_cli_args` of that checkout) and the shipped adapters; the service's settings come from the
environment as usual (TRACE_REQUESTS=true, ...: an A/B of one setting).

    python -m bench.frontend_cpu DIR service|raw LABEL [--tasks extract_entities,viggo,v1] [--rpl 12] [--out-dir D]
        [--v1-prompt-tokens 512]
        -> D/LABEL.json (task_baseline's results, plus idle_cpu_ms_per_s and each level's net figure),
           a line per figure in D/summary.txt

`v1`: /v1/completions with 512-token random prompts (`--v1-prompt-tokens`) and one output token (mostly the
request's way in: what a burst of new requests costs the front end before their prefill starts). DIR: a checkout (a
`git worktree` of the commit to measure). Clock ticks are 10 ms and two cores are shared with the engine and the
client here, so differences under ~1.5 ms per request are noise on this machine (bench/README.md) in the process'
figure; the event loop's own (its thread's schedstat, in nanoseconds) resolves tenths of a millisecond where requests
are short, since the idle rate subtracted from it grows with each request's duration.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import psutil

from bench import servers, task_baseline
from bench.cli import first_model
from bench.load import auth_headers

SERVICE_WORKER = "_bentoml_impl.worker.service"  # the process that runs the service's event loop
IDLE_S = 20.0
CONCURRENCY = 8
V1_PROMPT_TOKENS = 512


def frontend_pid(kind: str, leader: int) -> int:
    """The process whose event loop serves requests: raw vLLM's API server is the started process itself; the
    service's is BentoML's worker, a descendant of the started CLI."""
    if kind == "raw":
        return leader
    for child in psutil.Process(leader).children(recursive=True):
        if SERVICE_WORKER in " ".join(child.cmdline()):
            return child.pid
    raise RuntimeError(f"no {SERVICE_WORKER} process under pid {leader}")


def net_ms_per_request(gross_ms: float, idle_ms_per_s: float, seconds_per_request: float) -> float:
    """The CPU a request costs beyond what the process spends idle over the same time."""
    return gross_ms - idle_ms_per_s * seconds_per_request


def v1_level(
    url: str, pid: int, requests: int, api_key: str | None = None, seed: int = 0, prompt_tokens: int = V1_PROMPT_TOKENS
) -> dict[str, Any]:
    """/v1/completions at CONCURRENCY: random prompts (no prefix-cache hits), one output token each; `pid`'s CPU
    time per request."""
    model = first_model(url, api_key)["id"]
    rng = random.Random(seed)
    bodies = [
        {"model": model, "prompt": [rng.randrange(1000, 20000) for _ in range(prompt_tokens)], "max_tokens": 1,
         "temperature": 0}
        for _ in range(requests + 1)
    ]  # fmt: skip
    # A warm-up prompt of its own: the load's first must not find its prefix cached.
    figures = task_baseline.timed_level(
        f"{url}/v1/completions", auth_headers(api_key), bodies[1:], CONCURRENCY, pid, warm_up=bodies[0]
    )
    print(f"[frontend-cpu] v1 c={CONCURRENCY}: {figures['ok']}/{requests} ok, "
          f"front end {figures['frontend_cpu_ms_per_request']:.2f} CPU ms/request, "
          f"event loop {figures['loop_cpu_ms_per_request']:.3f}", flush=True)  # fmt: skip
    return figures


def server_command(checkout: Path, kind: str, port: int, env: dict[str, str]) -> tuple[list[str], str]:
    if kind == "service":
        return servers.service_command(port), "/readyz"
    # The checkout's own engine flags: the commit under test may build them differently.
    flags = subprocess.run(
        [sys.executable, "-c", "from serving.engine import resolve_model, vllm_cli_args; from serving.settings "
         "import ServiceSettings; s = ServiceSettings(); print('\\n'.join(vllm_cli_args(s, resolve_model(s))))"],
        cwd=checkout, env=env, capture_output=True, text=True, check=True,
    ).stdout.splitlines()  # fmt: skip
    adapters = checkout / "finetune" / "adapters"
    lora = ["--lora-modules", f"viggo={adapters / 'viggo-smollm2'}", f"ner={adapters / 'ner-smollm2'}"]
    return servers.raw_command(flags + lora, port), "/health"


@contextmanager
def checkout_server(
    checkout: Path, kind: str, label: str, out_dir: Path, watcher: Path | None = None, **env_vars: str
) -> Iterator[tuple[servers.Server, int, Path]]:
    """`kind` started from `checkout` (a watcher's sitecustomize folder first on its path, if any), its log
    OUT_DIR/LABEL.log and its results kept under OUT_DIR; the server, its serving process' pid and the log."""
    out_dir.mkdir(parents=True, exist_ok=True)
    env = {
        **os.environ,
        "PYTHONPATH": os.pathsep.join(str(path) for path in (watcher, checkout) if path is not None),
        "PERSIST_RESULTS": "false",
        "RESULTS_URI": str(out_dir / "results"),
        "SPOOL_DIR": str(out_dir / "spool"),
        **env_vars,
    }
    cmd, ready = server_command(checkout, kind, servers.free_port(), env)
    log_path = out_dir / f"{label}.log"
    with servers.started(kind, cmd, env, log_path, ready, cwd=checkout) as server:
        yield server, frontend_pid(kind, server.pid), log_path


def measure(
    checkout: Path, kind: str, label: str, tasks: str, rpl: int, out_dir: Path, v1_prompt_tokens: int = V1_PROMPT_TOKENS
) -> dict[str, Any]:
    out = out_dir / f"{label}.json"
    with checkout_server(checkout, kind, label, out_dir) as (server, pid, _):
        time.sleep(5)  # start-up's last work (the first stat log) out of the idle window
        before = task_baseline.cpu_seconds(pid), task_baseline.loop_cpu_seconds(pid)
        time.sleep(IDLE_S)
        idle_ms_per_s = (task_baseline.cpu_seconds(pid) - before[0]) * 1000 / IDLE_S
        loop_idle_ms_per_s = (task_baseline.loop_cpu_seconds(pid) - before[1]) * 1000 / IDLE_S
        task_list = [task for task in tasks.split(",") if task != "v1"]
        if task_list:
            argv = [kind, "--url", server.url, "--concurrency", str(CONCURRENCY), "--repeats", "1",
                    "--tasks", ",".join(task_list), "--requests-per-level", str(rpl), "--cpu-pid", str(pid),
                    "--out", str(out)]  # fmt: skip
            if kind == "raw":
                argv += ["--adapter", "viggo"]
            task_baseline.main(argv)
        data: dict[str, Any] = json.loads(out.read_text()) if task_list else {"target": kind, "results": {}}
        if "v1" in tasks.split(","):
            requests = rpl * CONCURRENCY * 4  # short: 4x as many
            data["results"]["v1_completions"] = [v1_level(server.url, pid, requests, prompt_tokens=v1_prompt_tokens)]
    data |= {"label": label, "checkout": str(checkout), "idle_cpu_ms_per_s": round(idle_ms_per_s, 3),
             "loop_idle_cpu_ms_per_s": round(loop_idle_ms_per_s, 4)}  # fmt: skip
    lines = [f"{label} idle CPU ms/s: {idle_ms_per_s:.2f} (event loop {loop_idle_ms_per_s:.3f})"]
    for task, rows in data["results"].items():
        for row in rows:
            seconds_per_request = row["duration"] / row["requests"]
            net = net_ms_per_request(row["frontend_cpu_ms_per_request"], idle_ms_per_s, seconds_per_request)
            loop_net = net_ms_per_request(row["loop_cpu_ms_per_request"], loop_idle_ms_per_s, seconds_per_request)
            row["frontend_cpu_ms_per_request_net"] = round(net, 3)
            row["loop_cpu_ms_per_request_net"] = round(loop_net, 4)
            lines.append(
                f"{label} {task} c={row['concurrency']}: {row['requests']} requests, front end "
                f"{row['frontend_cpu_ms_per_request']:.2f} CPU ms/request gross, {net:.2f} net of idle; "
                f"its event loop {row['loop_cpu_ms_per_request']:.3f} gross, {loop_net:.3f} net"
            )
    write_results(out_dir, label, data, lines)
    return data


def write_results(out_dir: Path, label: str, data: dict[str, Any], lines: list[str]) -> None:
    """OUT_DIR/LABEL.json, and the run's lines appended to OUT_DIR/summary.txt and printed."""
    (out_dir / f"{label}.json").write_text(json.dumps(data, indent=1))
    with (out_dir / "summary.txt").open("a") as summary:
        summary.write("\n".join(lines) + "\n")
    print("\n".join(lines))


def checkout_parser(description: str | None) -> argparse.ArgumentParser:
    """The command line of a bench that starts one system from a checkout: DIR service|raw LABEL."""
    parser = argparse.ArgumentParser(description=description, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("checkout", type=Path, help="the checkout to start (a git worktree of the commit to measure)")
    parser.add_argument("kind", choices=["service", "raw"])
    parser.add_argument("label", help="results name: OUT_DIR/LABEL.json")
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = checkout_parser(__doc__)
    parser.add_argument("--tasks", default="extract_entities,viggo")
    parser.add_argument("--rpl", type=int, default=4, help="requests per level = this x 8")
    parser.add_argument("--out-dir", type=Path, default=Path("/tmp/frontend-cpu"))
    parser.add_argument(
        "--v1-prompt-tokens",
        type=int,
        default=V1_PROMPT_TOKENS,
        help="prompt length of the v1 level (short prompts: many requests per second, the engine's prefill small)",
    )
    args = parser.parse_args(argv)
    measure(args.checkout.resolve(), args.kind, args.label, args.tasks, args.rpl, args.out_dir, args.v1_prompt_tokens)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
