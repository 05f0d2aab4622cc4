"""Load a LoRA adapter into the service's vLLM engine (CPU or GPU) and run one ViGGO request through it.

    python -m finetune.check_vllm [ADAPTER_DIR] [--sentence "..."]

Default adapter: finetune/adapters/viggo-smollm2. Prints the base model's and the adapter's output.
"""

from __future__ import annotations

import argparse
import asyncio
from pathlib import Path

DEFAULT_ADAPTER = Path(__file__).parent / "adapters" / "viggo-smollm2"
DEFAULT_SENTENCE = ("SpellForce 3 is a pretty bad game. The developer Grimlore Games is clearly a bunch of "
                    "no-talent hacks, and 2017 was a terrible year for games anyway.")


async def _generate(engine, prompt: str, request_id: str, lora_request=None) -> str:
    from vllm import SamplingParams

    params = SamplingParams(temperature=0.0, max_tokens=96)
    final = None
    async for output in engine.generate(prompt, params, request_id=request_id, lora_request=lora_request):
        final = output
    return final.outputs[0].text if final else ""


async def check(adapter: Path, sentence: str) -> dict[str, str]:
    from transformers import AutoTokenizer
    from vllm.lora.request import LoRARequest

    from finetune.data import render_prompt
    from serving.engine import build_engine
    from serving.settings import ServiceSettings

    handle = build_engine(ServiceSettings(kv_cache_memory_bytes=1 << 30))
    try:
        tokenizer = AutoTokenizer.from_pretrained(handle.model.path)
        prompt = render_prompt(tokenizer, sentence)
        base = await _generate(handle.engine, prompt, "check-base")
        tuned = await _generate(handle.engine, prompt, "check-lora", LoRARequest("viggo", 1, str(adapter.resolve())))
    finally:
        handle.engine.shutdown()
    return {"base": base, "adapter": tuned}


if __name__ == "__main__":
    parser = argparse.ArgumentParser(prog="python -m finetune.check_vllm", description=__doc__)
    parser.add_argument("adapter", nargs="?", type=Path, default=DEFAULT_ADAPTER)
    parser.add_argument("--sentence", default=DEFAULT_SENTENCE)
    args = parser.parse_args()
    result = asyncio.run(check(args.adapter, args.sentence))
    print(f"base model: {result['base']!r}")
    print(f"adapter   : {result['adapter']!r}")
