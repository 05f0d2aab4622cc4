"""Prompt time of the default model on this CPU with and without a LoRA adapter (default: the shipped NER one).

vLLM's CPU build applies a LoRA adapter through plain torch operations, and a step through one is many times slower
than the base model's; the step in flight when requests are aborted runs to its end first, so on the CPU an abandoned
batch of long texts can keep the engine busy for a minute (tests/service/test_disconnect.py waits for that step).
One offline engine (eager, LoRA on, a step budget of STEP_TOKENS, default vLLM's 2,048; the service's on a CPU is 512,
serving.engine.CPU_STEP_TOKENS), PROMPTS prompts of REPEAT sentences each and MAX_TOKENS output tokens (default one:
prefill alone; more, with end-of-sequence ignored, adds batched decoding, which a smaller step budget interleaves with
the prefill), base and adapter in turn for ROUNDS rounds; each line is one batch's wall time. A smaller step budget
shortens the longest step (what an abort or a new request waits for) at whatever cost to throughput these lines show.

    python -m bench.cpu_lora [--adapter DIR] [--prompts 12] [--repeat 20] [--max-tokens 1] [--rounds 2]
                             [--step-tokens 2048]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

from serving.model_source import resolve_model
from serving.settings import BUNDLED_NER_ADAPTER, ServiceSettings

# A fixed KV cache: vLLM's CPU default asks for 90% of the RAM, and fails beside a running service.
KV_CACHE_BYTES = 1 << 30
SENTENCE = "Angela Merkel met Emmanuel Macron and Justin Trudeau in Berlin on 4 March 2019. "


def run(
    model: str, adapter: Path, prompts: int, repeat: int, rounds: int, step_tokens: int = 2048, max_tokens: int = 1
) -> list[tuple[str, int, float]]:
    """(which, prompt tokens, seconds) per batch."""
    from vllm import LLM, SamplingParams
    from vllm.lora.request import LoRARequest

    llm = LLM(
        model=model, dtype="float32", max_model_len=2048, max_num_batched_tokens=step_tokens, enforce_eager=True,
        enable_lora=True, max_lora_rank=32, enable_prefix_caching=False,
        kv_cache_memory_bytes=KV_CACHE_BYTES,
    )  # fmt: skip
    texts = [f"{i}. {SENTENCE * repeat}" for i in range(prompts)]
    tokens = sum(len(llm.get_tokenizer().encode(text)) for text in texts)
    # ignore_eos: every prompt decodes all MAX_TOKENS, so base and adapter do the same work.
    params = SamplingParams(max_tokens=max_tokens, temperature=0, ignore_eos=True)
    lora = LoRARequest(adapter.name, 1, str(adapter))
    out = []
    for _ in range(rounds):
        for which, request in (("base", None), (f"LoRA {adapter.name}", lora)):
            started = time.perf_counter()
            llm.generate(texts, params, lora_request=request, use_tqdm=False)
            out.append((which, tokens, time.perf_counter() - started))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.cpu_lora", description=__doc__)
    p.add_argument("--adapter", type=Path, default=BUNDLED_NER_ADAPTER)
    p.add_argument("--prompts", type=int, default=12)
    p.add_argument("--repeat", type=int, default=20, help="sentences per prompt (~20 tokens each)")
    p.add_argument("--max-tokens", type=int, default=1, help="output tokens per prompt")
    p.add_argument("--rounds", type=int, default=2)
    p.add_argument("--step-tokens", type=int, default=2048, help="the engine's step budget (max_num_batched_tokens)")
    args = p.parse_args(argv)
    if min(args.prompts, args.repeat, args.rounds, args.max_tokens) < 1:
        p.error("--prompts, --repeat, --rounds and --max-tokens must be at least 1")
    if args.step_tokens < 64:
        p.error("--step-tokens must be at least 64")
    if not (args.adapter / "adapter_config.json").is_file():
        p.error(f"--adapter {args.adapter}: no adapter_config.json there")
    import torch

    model = resolve_model(ServiceSettings()).path
    results = run(model, args.adapter, args.prompts, args.repeat, args.rounds, args.step_tokens, args.max_tokens)
    print(f"torch CPU capability: {torch.backends.cpu.get_cpu_capability()}; model {model}; step {args.step_tokens}")
    out = f" and {args.prompts} x {args.max_tokens} output tokens" if args.max_tokens > 1 else ""
    for which, tokens, seconds in results:
        print(f"{which}: {tokens} prompt tokens{out} in {seconds:.1f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
