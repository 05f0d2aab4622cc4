"""ViGGO exact match of a base model with or without a LoRA adapter, with transformers' greedy `generate`.

`python -m finetune.evaluate --adapter finetune/adapters/viggo-smollm2 --split valid` (the service's
own evaluation goes through vLLM; this one needs only torch + transformers + peft, e.g. on a GPU box).
Exact match compares the generated MR string with the reference after stripping whitespace.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

from tqdm import tqdm


def load_model(base_path: str, adapter: str | Path | None, device: str) -> Any:
    import torch
    from transformers import AutoModelForCausalLM

    dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
    # Any: transformers' decorated `to` confuses mypy, and the caller only generates with it.
    model: Any = AutoModelForCausalLM.from_pretrained(base_path, dtype=dtype)
    if adapter:
        from peft import PeftModel

        model = PeftModel.from_pretrained(model, str(adapter)).merge_and_unload()
    return model.to(device).eval()


def generate_mrs(
    model: Any, tokenizer: Any, sentences: list[str], *, batch_size: int = 32, max_new_tokens: int = 128
) -> list[str]:
    import torch

    from finetune.data import end_of_turn_token, render_prompt
    from viggo.prompt import build_messages

    tokenizer.padding_side = "left"
    eot_id = tokenizer.convert_tokens_to_ids(end_of_turn_token(tokenizer))
    pad_id = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else eot_id
    prompts = [render_prompt(tokenizer, build_messages(s)) for s in sentences]
    order = sorted(range(len(prompts)), key=lambda i: len(prompts[i]))
    outputs: list[str] = [""] * len(prompts)
    for start in tqdm(range(0, len(order), batch_size), desc="generating", unit="batch"):
        idx = order[start : start + batch_size]
        enc = tokenizer([prompts[i] for i in idx], return_tensors="pt", padding=True, add_special_tokens=False)
        enc = enc.to(model.device)
        with torch.inference_mode():
            out = model.generate(
                **enc, max_new_tokens=max_new_tokens, do_sample=False, eos_token_id=eot_id, pad_token_id=pad_id
            )
        texts = tokenizer.batch_decode(out[:, enc["input_ids"].shape[1] :], skip_special_tokens=True)
        for i, text in zip(idx, texts, strict=True):
            outputs[i] = text.strip()
    return outputs


def evaluate(
    base_path: str,
    adapter: str | Path | None,
    source: str,
    split: str,
    *,
    limit: int | None = None,
    batch_size: int = 32,
    device: str | None = None,
) -> dict[str, Any]:
    import torch
    from transformers import AutoTokenizer

    from viggo.dataset import load_examples

    device = device or ("cuda" if torch.cuda.is_available() else "cpu")
    examples = load_examples(source, split)[:limit]
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    model = load_model(base_path, adapter, device)
    started = time.perf_counter()
    predictions = generate_mrs(model, tokenizer, [e.sentence for e in examples], batch_size=batch_size)
    from viggo.metrics import score

    result: dict[str, Any] = score(predictions, [e.mr for e in examples]).as_dict()
    result.update(
        adapter=str(adapter) if adapter else None, split=split, runtime_s=round(time.perf_counter() - started, 1)
    )
    result["samples"] = [
        {"sentence": e.sentence, "reference": e.mr, "prediction": p}
        for e, p in list(zip(examples, predictions, strict=True))[:5]
    ]
    return result


def main(argv: list[str] | None = None) -> int:
    from finetune.config import DEFAULT_DATA

    parser = argparse.ArgumentParser(prog="python -m finetune.evaluate", description=__doc__)
    parser.add_argument("--base-model", help="model folder (default: the offline default model)")
    parser.add_argument("--adapter", help="LoRA adapter folder (omit: the base model alone)")
    parser.add_argument("--data", default=DEFAULT_DATA)
    parser.add_argument("--split", default="valid")
    parser.add_argument("--limit", type=int)
    parser.add_argument("--batch-size", type=int, default=32)
    parser.add_argument("--out", type=Path, help="write the result JSON here too")
    args = parser.parse_args(argv)
    base = args.base_model
    if base is None:
        from serving.default_model import ensure_default_model
        from serving.settings import DEFAULT_CACHE_DIR

        base = str(ensure_default_model(DEFAULT_CACHE_DIR))
    result = evaluate(base, args.adapter, args.data, args.split, limit=args.limit, batch_size=args.batch_size)
    text = json.dumps(result, indent=2)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    print(f"exact match {result['exact_match']:.3f} on {result['count']} {args.split} examples", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
