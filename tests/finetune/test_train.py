"""finetune/ training: a few real optimisation steps on CPU, resume, CLI, and the shipped adapter.

The training tests use a tiny random Llama with the default model's real tokenizer and chat template,
so the prompts are exactly the service's, yet a step takes well under a second on 2 cores.
"""

from __future__ import annotations

import json
import math
import shutil
from pathlib import Path
from typing import Any

import pytest
import torch
import transformers
import yaml
from safetensors import safe_open
from transformers import PreTrainedTokenizerBase

from finetune.cli import main
from finetune.config import ALL_LINEAR, FinetuneConfig, load_config
from finetune.train import train
from serving.paths import REPO_ROOT
from serving.settings import ServiceSettings

TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json")
TrainedRuns = tuple[Path, Path, dict[str, Any], Path]


@pytest.fixture(scope="session")
def tiny_model_dir(
    tmp_path_factory: pytest.TempPathFactory, default_model_dir: Path, tokenizer: PreTrainedTokenizerBase
) -> Path:
    """A 2-layer Llama (hidden 32) with the default model's tokenizer."""
    folder = tmp_path_factory.mktemp("tiny-llama")
    torch.manual_seed(0)
    config = transformers.LlamaConfig(
        vocab_size=len(tokenizer),
        hidden_size=32,
        intermediate_size=64,
        num_hidden_layers=2,
        num_attention_heads=4,
        num_key_value_heads=2,
        max_position_embeddings=1024,
        tie_word_embeddings=True,
        bos_token_id=tokenizer.bos_token_id,
        eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id,
    )
    transformers.LlamaForCausalLM(config).save_pretrained(folder)
    for name in TOKENIZER_FILES:
        if (default_model_dir / name).is_file():
            shutil.copy2(default_model_dir / name, folder / name)
    return folder


def tiny_config(model_dir: Path, data: Path, output_dir: Path, **overrides: Any) -> FinetuneConfig:
    raw: dict[str, Any] = {
        "base_model": str(model_dir),
        "base_model_name": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "data": {"source": str(data), "max_train_samples": 12, "max_eval_samples": 4, "cutoff_len": 320},
        "lora": {"r": 4, "alpha": 8, "dropout": 0.0},
        "eval": {"strategy": "no", "at_end": True, "batch_size": 4},
        "output_dir": str(output_dir),
        "max_steps": 3,
        "batch_size": 2,
        "learning_rate": 1e-3,
        "warmup_ratio": 0.0,
        "precision": "fp32",
        "logging_steps": 1,
        "save_steps": 2,
        "seed": 0,
        "torch_threads": 2,
    }
    raw.update(overrides)
    return FinetuneConfig.model_validate(raw)


@pytest.fixture(scope="module")
def trained(tmp_path_factory: pytest.TempPathFactory, tiny_model_dir: Path, viggo_data: Path) -> TrainedRuns:
    """3 steps from scratch, then a second run to max_steps 5 that resumes from checkpoint-3."""
    output = tmp_path_factory.mktemp("ft") / "run"
    first = train(tiny_config(tiny_model_dir, viggo_data, output))
    first_results = json.loads((output / "all_results.json").read_text())
    second = train(tiny_config(tiny_model_dir, viggo_data, output, max_steps=5))
    return output, first, first_results, second


def test_training_writes_a_vllm_loadable_adapter(trained: TrainedRuns) -> None:
    _, adapter, _, _ = trained
    assert (adapter / "adapter_config.json").is_file()
    with safe_open(str(adapter / "adapter_model.safetensors"), framework="pt") as handle:
        keys = list(handle.keys())
    assert keys and all(".lora_A." in k or ".lora_B." in k for k in keys)
    assert not (adapter / "adapter_model.bin").exists()
    config = json.loads((adapter / "adapter_config.json").read_text())
    assert config["r"] == 4 and config["lora_alpha"] == 8 and config["peft_type"] == "LORA"
    assert set(config["target_modules"]) == set(ALL_LINEAR)
    assert config["base_model_name_or_path"] == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert {k.split(".lora_")[0].rsplit(".", 1)[-1] for k in keys} == set(ALL_LINEAR)


def test_training_writes_metrics_plot_and_config(trained: TrainedRuns) -> None:
    output, adapter, results, _ = trained
    assert results["train_steps"] == 3 and results["train_resumed_from_step"] == 0
    for key in ("train_loss", "eval_loss", "train_runtime", "train_samples_per_second"):
        assert math.isfinite(results[key]), key
    for folder in (output, adapter):
        assert (folder / "all_results.json").is_file()
        assert (folder / "training_loss.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
        assert load_config(folder / "finetune_config.yaml").lora.r == 4
    state = json.loads((output / "trainer_state.json").read_text())
    losses = [e["loss"] for e in state["log_history"] if "loss" in e]
    assert losses and all(math.isfinite(x) for x in losses)


def test_second_run_resumes_from_the_checkpoint(trained: TrainedRuns) -> None:
    output, _, _, adapter = trained
    results = json.loads((output / "all_results.json").read_text())
    assert results["train_resumed_from_step"] == 3
    assert results["train_steps"] == 5
    state = json.loads((output / "trainer_state.json").read_text())
    logged = [e["step"] for e in state["log_history"] if "loss" in e]
    assert logged[-2:] == [4, 5]
    assert (output / "checkpoint-5").is_dir()
    assert (adapter / "adapter_model.safetensors").is_file()


def test_cli_runs_a_step_and_fails_cleanly_on_a_bad_config(
    tmp_path: Path, tiny_model_dir: Path, viggo_data: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tiny_config(tiny_model_dir, viggo_data, tmp_path / "out", max_steps=1)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    assert main(["--config", str(path), "--max-steps", "1", "--output-dir", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "adapter" / "adapter_model.safetensors").is_file()
    path.write_text("epochs: 3\n")
    assert main(["--config", str(path)]) == 2
    assert "invalid config" in capsys.readouterr().err


@pytest.mark.parametrize("name", ["viggo-smollm2", "ner-smollm2"])
def test_shipped_adapters_are_complete(name: str) -> None:
    folder = REPO_ROOT / "finetune" / "adapters" / name
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["r"] <= ServiceSettings.model_fields["max_lora_rank"].default
    assert set(config["target_modules"]) == set(ALL_LINEAR)
    assert config["base_model_name_or_path"].endswith("SmolLM2-135M-Instruct")
    assert (folder / "adapter_model.safetensors").stat().st_size < 20 * 2**20
    assert load_config(folder / "finetune_config.yaml").lora.r == config["r"]  # the config that made it
    if name == "viggo-smollm2":
        assert json.loads((folder / "eval_valid.json").read_text())["exact_match"] >= 0.5


def test_the_ner_config_trains_a_labelling_adapter_on_its_data(tmp_path: Path, tiny_model_dir: Path) -> None:
    """The shipped NER config as is (its data, bf16 autocast, which on a CPU needs transformers' use_cpu), on the
    tiny model, for two steps through the CLI."""
    config = REPO_ROOT / "finetune" / "configs" / "ner-smollm2.yaml"
    assert load_config(config).data.task == "ner"
    argv = ["--config", str(config), "--base-model", str(tiny_model_dir), "--max-steps", "2"]
    assert main([*argv, "--output-dir", str(tmp_path / "ner"), "--batch-size", "2", "--no-resume"]) == 0
    results = json.loads((tmp_path / "ner" / "adapter" / "all_results.json").read_text())
    assert results["train_steps"] == 2 and math.isfinite(results["train_loss"])
    assert results["train_samples"] > 1000  # every part of finetune/data/ner
