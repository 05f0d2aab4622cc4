"""Engine flags: the settings become the same flags `vllm serve` takes."""

from __future__ import annotations

from serving.engine import vllm_cli_args
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
