"""The default model's generation time on this CPU in each dtype: why `dtype` auto is float32 on x86 without AVX-512.

Each dtype gets an engine of its own (offline `LLM`, eager, a process at a time), one warm-up generation, then
PROMPTS greedy generations of TOKENS tokens at once (~40-token prompts, end of sequence ignored); the wall time of
that batch is printed with torch's CPU capability.

    python -m bench.cpu_dtype [--dtypes float32,bfloat16] [--prompts 8] [--tokens 16]
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import time

from serving.model_source import resolve_model
from serving.settings import ServiceSettings


def one(model: str, dtype: str, prompts: int, tokens: int) -> float:
    """Seconds for the batch in `dtype`, in this process (the engine goes with it)."""
    from vllm import LLM, SamplingParams

    llm = LLM(model=model, dtype=dtype, max_model_len=2048, enforce_eager=True)  # type: ignore[arg-type]
    params = SamplingParams(max_tokens=tokens, temperature=0, ignore_eos=True)
    texts = ["The quick brown fox jumps over the lazy dog. " * 4 + str(i) for i in range(prompts)]
    llm.generate(texts[:1], params, use_tqdm=False)
    started = time.perf_counter()
    llm.generate(texts, params, use_tqdm=False)
    return time.perf_counter() - started


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cpu_dtype", description=__doc__)
    p.add_argument("--dtypes", default="float32,bfloat16", help="comma-separated, each one of vLLM's --dtype values")
    p.add_argument("--prompts", type=int, default=8)
    p.add_argument("--tokens", type=int, default=16)
    p.add_argument("--one", help=argparse.SUPPRESS)  # a child process' dtype
    args = p.parse_args(argv)
    model = resolve_model(ServiceSettings()).path
    if args.one:
        print(f"SECONDS {one(model, args.one, args.prompts, args.tokens):.2f}")  # vLLM logs to stdout too
        return 0
    import torch

    print(f"torch CPU capability: {torch.backends.cpu.get_cpu_capability()}; model {model}")
    for dtype in args.dtypes.split(","):
        child = [sys.executable, "-m", "bench.cpu_dtype", "--one", dtype, "--prompts", str(args.prompts)]
        out = subprocess.run([*child, "--tokens", str(args.tokens)], capture_output=True, text=True, check=True)
        seconds = [line.split()[1] for line in out.stdout.splitlines() if line.startswith("SECONDS ")][-1]
        print(f"{dtype}: {args.prompts} generations of {args.tokens} tokens in {seconds} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
