"""Engine flags: the settings become the same flags `vllm serve` takes."""

from __future__ import annotations

import os
import subprocess
import sys

from serving.engine import CPU_STEP_TOKENS, STEP_TOKENS_FLAG, engine_dtype, vllm_cli_args
from serving.model_source import ResolvedModel
from serving.settings import ServiceSettings


def test_engine_flags_are_vllm_serve_flags() -> None:
    resolved = ResolvedModel(path="/models/m", name="m")
    flags = vllm_cli_args(
        ServiceSettings(max_num_seqs=8, enable_prefix_caching=False, vllm_args="--enforce-eager"), resolved
    )
    assert flags[0] == resolved.path
    assert flags[flags.index("--max-num-seqs") + 1] == "8"
    assert "--no-enable-prefix-caching" in flags and flags[-1] == "--enforce-eager"
    assert "--enable-lora" in flags


def test_on_a_cpu_the_step_budget_is_small_unless_given() -> None:
    # This suite runs on vLLM's CPU build: short steps by default, the operator's own budget when VLLM_ARGS has one.
    resolved = ResolvedModel(path="/models/m", name="m")
    flags = vllm_cli_args(ServiceSettings(), resolved)
    assert flags[flags.index(STEP_TOKENS_FLAG) + 1] == str(CPU_STEP_TOKENS) == "512"
    for given in ("--max-num-batched-tokens 4096", "--max-num-batched-tokens=4096"):
        settings = ServiceSettings(vllm_args=given)
        flags = vllm_cli_args(settings, resolved)
        assert flags[-len(settings.vllm_args) :] == settings.vllm_args and str(CPU_STEP_TOKENS) not in flags


def engine_dtype_in_a_process(setting: str, capability: str) -> str:
    """`engine_dtype(setting)` where torch's CPU kernels are capped at `capability` (read once, at torch's start)."""
    code = f"from serving.engine import engine_dtype; print(engine_dtype({setting!r}))"
    env = {**os.environ, "ATEN_CPU_CAPABILITY": capability}
    return subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    ).stdout.strip()


def test_auto_dtype_on_an_x86_cpu_without_avx512_is_float32() -> None:
    assert engine_dtype_in_a_process("auto", "avx2") == "float32"


def test_a_dtype_set_explicitly_is_kept_on_any_cpu() -> None:
    assert engine_dtype_in_a_process("bfloat16", "avx2") == "bfloat16"
    assert engine_dtype("float16") == "float16"
