"""vLLM's Prometheus stat logger, as the service's worker runs it on its event loop: the CPU time of one engine step's
`record()`, with prometheus_client's values where each mode keeps them.

`bentoml serve` sets PROMETHEUS_MULTIPROC_DIR for its worker, and prometheus_client then backs every value with a
memory-mapped file; raw `vllm serve` keeps them in memory; serving.metrics.keep_engine_series_in_memory keeps vLLM's
in memory inside the worker. One engine step of BATCH decoding requests: scheduler gauges, counters, an
inter-token-latency observation per request, and every OUTPUT_TOKENS steps the batch finishing (its per-request
histograms) and a new one starting (its time to first token). Each mode runs in a process of its own (the value
class is chosen at prometheus_client's import), ROUNDS times, interleaved; figures are the median round's.

    python -m bench.engine_metrics [--batch 64] [--output-tokens 128] [--steps 4096] [--rounds 5]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time

MODES = {
    "memory": "raw vLLM: values in memory",
    "files": "bentoml serve's worker: every value in a memory-mapped file",
    "files, engine in memory": "the worker with serving.metrics.keep_engine_series_in_memory",
}


def step_seconds(batch: int, output_tokens: int, steps: int) -> float:
    """CPU seconds of `steps` record() calls (this process' value class, whatever the environment chose)."""
    from vllm.engine.arg_utils import EngineArgs
    from vllm.v1.engine import FinishReason
    from vllm.v1.metrics.loggers import PrometheusStatLogger
    from vllm.v1.metrics.stats import FinishedRequestStats, IterationStats, SchedulerStats

    from serving.model_source import resolve_model
    from serving.settings import ServiceSettings

    config = EngineArgs(model=resolve_model(ServiceSettings()).path, max_model_len=2048).create_engine_config()
    logger = PrometheusStatLogger(config)
    finished = [
        FinishedRequestStats(FinishReason.LENGTH, e2e_latency=1.8, num_prompt_tokens=512,
                             num_generation_tokens=output_tokens, max_tokens_param=output_tokens, queued_time=0.01,
                             prefill_time=0.4, inference_time=1.7, decode_time=1.3, mean_time_per_output_token=0.01)
        for _ in range(batch)
    ]  # fmt: skip
    started = time.process_time()
    for step in range(steps):
        scheduler = SchedulerStats(num_running_reqs=batch, kv_cache_usage=0.3)
        iteration = IterationStats()
        iteration.num_generation_tokens = batch
        if step % output_tokens == 0:  # a new batch: its first tokens
            iteration.time_to_first_tokens_iter = [0.45] * batch
            iteration.max_num_generation_tokens_iter = [output_tokens] * batch
            iteration.n_params_iter = [1] * batch
        else:
            iteration.inter_token_latencies_iter = [0.01] * batch
        if step % output_tokens == output_tokens - 1:
            iteration.finished_requests = finished
        logger.record(scheduler, iteration)
    return time.process_time() - started


def run_mode(mode: str, batch: int, output_tokens: int, steps: int) -> float:
    env = {k: v for k, v in os.environ.items() if k.lower() != "prometheus_multiproc_dir"}
    with tempfile.TemporaryDirectory() as files:
        if mode != "memory":
            env["PROMETHEUS_MULTIPROC_DIR"] = files
        code = (
            "import json, sys\nfrom bench.engine_metrics import step_seconds\n"
            + ("from serving.metrics import keep_engine_series_in_memory\nkeep_engine_series_in_memory()\n"
               if mode == "files, engine in memory" else "")
            + f"print(json.dumps(step_seconds({batch}, {output_tokens}, {steps})))"
        )  # fmt: skip
        run = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True, timeout=900)
    if run.returncode != 0:
        raise SystemExit(f"{mode}: {run.stderr[-2000:]}")
    return float(json.loads(run.stdout.strip().splitlines()[-1]))


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.engine_metrics", description=__doc__)
    p.add_argument("--batch", type=int, default=64, help="requests decoding in each step")
    p.add_argument("--output-tokens", type=int, default=128, help="steps of one batch, from first token to finish")
    p.add_argument("--steps", type=int, default=4096)
    p.add_argument("--rounds", type=int, default=5)
    args = p.parse_args(argv)
    if min(args.batch, args.output_tokens, args.steps, args.rounds) < 1:
        p.error("--batch, --output-tokens, --steps and --rounds must be at least 1")
    seconds: dict[str, list[float]] = {mode: [] for mode in MODES}
    for _ in range(args.rounds):
        for mode in MODES:
            seconds[mode].append(run_mode(mode, args.batch, args.output_tokens, args.steps))
    requests = args.steps / args.output_tokens * args.batch
    print(
        f"{args.steps} steps of {args.batch} requests, {args.output_tokens} tokens each; median of {args.rounds} rounds"
    )
    for mode, what in MODES.items():
        s = statistics.median(seconds[mode])
        rounds = ", ".join(f"{x:.2f}" for x in seconds[mode])
        print(f"{mode}: {s / args.steps * 1e6:.1f} us/step, {s / (args.steps * args.batch) * 1e6:.2f} us/token, "
              f"{s / requests * 1e6:.0f} us/request ({what}; rounds {rounds} s)")  # fmt: skip
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
