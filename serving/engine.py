"""One vLLM AsyncLLM engine built from ServiceSettings, on vLLM 0.25 (GPU host) and 0.32 (here).

The settings become `vllm serve` command-line flags parsed by vLLM's own parser, so the engine and
the OpenAI-compatible app see the same argparse Namespace that `vllm serve` would build, and any
extra flag in `vllm_args` behaves exactly as it does there.
"""

from __future__ import annotations

import argparse
import importlib
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from serving.generation import Generator, LocalAdapters
from serving.model_source import ResolvedModel, resolve_model
from serving.settings import ServiceSettings

if TYPE_CHECKING:
    from vllm.v1.engine.async_llm import AsyncLLM

CPU_MEMORY_FRACTION = 0.3
GPU_MEMORY_FRACTION = 0.9
# vLLM's CPU build applies a LoRA adapter per token in plain torch: a step of vLLM's 2,048 tokens through one takes
# ~80 s on 2 AVX2 cores, and every abort and newly arrived request waits for the step in flight. 512 ends steps 4x
# sooner at the same throughput (bench/results/cpu-lora/step-tokens.txt); GPUs keep vLLM's own budget.
CPU_STEP_TOKENS = 512
STEP_TOKENS_FLAG = "--max-num-batched-tokens"


def _make_arg_parser() -> argparse.ArgumentParser:
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    try:  # vLLM >= 0.30
        from vllm.entrypoints.launchers.cli_args import make_arg_parser
    except ImportError:  # vLLM 0.25
        from vllm.entrypoints.openai.cli_args import make_arg_parser  # type: ignore[no-redef]
    return make_arg_parser(FlexibleArgumentParser())


def on_cpu() -> bool:
    from vllm.platforms import current_platform

    return current_platform.is_cpu()


def engine_dtype(setting: str) -> str:
    """The `--dtype` for the `dtype` setting: "auto" is float32 on an x86 CPU without AVX-512.

    There, bfloat16 weights (the default model's, most models') have no fast kernel: oneDNN cannot build its bf16
    matmul and vLLM falls back to torch's, 4.4x slower than float32 on a 2-core AMD EPYC with AVX2 (8 greedy
    generations of 16 tokens: 12.3 s against 2.8 s, `python -m bench.cpu_dtype`). Where AVX-512 or a GPU is, "auto"
    stays the model's own.
    """
    if setting != "auto" or not on_cpu():
        return setting
    import torch

    return "float32" if torch.backends.cpu.get_cpu_capability() in ("AVX2", "NO AVX") else setting


def vllm_cli_args(settings: ServiceSettings, model: ResolvedModel) -> list[str]:
    """The `vllm serve` flags equivalent to these settings (also what the benchmark gives raw vLLM)."""
    memory = settings.gpu_memory_utilization or (CPU_MEMORY_FRACTION if on_cpu() else GPU_MEMORY_FRACTION)
    args = [
        model.path,
        "--served-model-name", model.name,
        "--dtype", engine_dtype(settings.dtype),
        "--max-model-len", str(settings.max_model_len),
        "--gpu-memory-utilization", str(memory),
        "--max-num-seqs", str(settings.max_num_seqs),
        "--tensor-parallel-size", str(settings.tensor_parallel_size),
        "--seed", str(settings.seed),
        "--enable-prefix-caching" if settings.enable_prefix_caching else "--no-enable-prefix-caching",
        # Equal priorities schedule as fcfs does; extraction jobs run below interactive requests (serving/jobs.py).
        "--scheduling-policy", "priority",
    ]  # fmt: skip
    if settings.kv_cache_memory_bytes:
        args += ["--kv-cache-memory-bytes", str(settings.kv_cache_memory_bytes)]
    if settings.enforce_eager:
        args.append("--enforce-eager")
    if on_cpu() and not any(arg.split("=")[0] == STEP_TOKENS_FLAG for arg in settings.vllm_args):
        args += [STEP_TOKENS_FLAG, str(CPU_STEP_TOKENS)]
    if settings.enable_lora:
        args += [
            "--enable-lora",
            "--max-loras",
            str(settings.max_loras),
            "--max-lora-rank",
            str(settings.max_lora_rank),
        ]
    return args + settings.vllm_args


@dataclass
class EngineHandle:
    engine: AsyncLLM
    args: argparse.Namespace  # the `vllm serve` Namespace, reused by the OpenAI app
    model: ResolvedModel


def _import_engine_modules() -> None:
    """Import vLLM's engine on a helper thread, whose stack holds nothing of ours.

    Some vLLM modules keep the ImportError of an optional dependency (torchcodec, on CPU); its
    traceback keeps alive every frame that was on the stack during the import. Imported from
    build_engine's caller chain, those frames later hold the engine, which then outlives its
    shutdown until interpreter teardown, where AsyncLLM.__del__ fails on vLLM's cleared modules.
    """
    thread = threading.Thread(target=importlib.import_module, args=("vllm.v1.engine.async_llm",), daemon=True)
    thread.start()
    thread.join()


def serve_namespace(settings: ServiceSettings) -> tuple[argparse.Namespace, ResolvedModel]:
    """What `vllm serve` would parse from these settings' flags, and the model they name."""
    model = resolve_model(settings)
    args = _make_arg_parser().parse_args(vllm_cli_args(settings, model))
    args.model = args.model_tag
    return args, model


def build_engine(settings: ServiceSettings) -> EngineHandle:
    """Resolve the model and start the engine (20-90 s on CPU, longer for big models on GPU)."""
    _import_engine_modules()
    from vllm.engine.arg_utils import AsyncEngineArgs
    from vllm.usage.usage_lib import UsageContext
    from vllm.v1.engine.async_llm import AsyncLLM

    args, model = serve_namespace(settings)
    engine_args = AsyncEngineArgs.from_cli_args(args)
    # `vllm serve`'s usage context: its batch defaults (max_num_batched_tokens 8192 instead of 2048 on
    # an H100) differ from the plain engine's, and cost the service ~30% throughput at concurrency 256.
    engine = AsyncLLM.from_engine_args(engine_args, usage_context=UsageContext.OPENAI_API_SERVER)
    return EngineHandle(engine=engine, args=args, model=model)


@contextmanager
def local_generator(
    settings: ServiceSettings, adapter_folders: Mapping[str, str | Path] | None = None
) -> Iterator[Generator]:
    """An in-process engine for CLIs and scripts (the service builds its own), shut down on exit.

    Run it under `if __name__ == "__main__":`: the engine spawns processes.
    """
    handle = build_engine(settings)
    try:
        yield Generator(handle.engine, settings.max_model_len, LocalAdapters(adapter_folders))
    finally:
        handle.engine.shutdown()
