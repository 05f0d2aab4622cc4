"""finetune/: config validation, response-only labels, and a few real optimisation steps on CPU.

The training tests use a tiny random Llama with the default model's real tokenizer and chat template,
so the prompts are exactly the service's, yet a step takes well under a second on 2 cores.
"""

from __future__ import annotations

import json
import math
from pathlib import Path

import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("peft")
transformers = pytest.importorskip("transformers")

from finetune.config import ALL_LINEAR, FinetuneConfig, load_config  # noqa: E402
from finetune.data import IGNORE_INDEX, CausalLMCollator, encode_examples, end_of_turn_token, render_prompt  # noqa: E402
from serving.paths import VIGGO_DATA  # noqa: E402
from viggo.dataset import ViggoExample, load_examples  # noqa: E402

DATA = VIGGO_DATA
REPO = Path(__file__).resolve().parents[1]
TOKENIZER_FILES = ("tokenizer.json", "tokenizer_config.json", "chat_template.jinja", "generation_config.json")


@pytest.fixture(scope="session")
def default_model_dir() -> Path:
    from serving.default_model import DefaultModelError, ensure_default_model
    from serving.settings import DEFAULT_CACHE_DIR

    try:
        return ensure_default_model(DEFAULT_CACHE_DIR)
    except DefaultModelError as exc:
        pytest.skip(str(exc))


@pytest.fixture(scope="session")
def tokenizer(default_model_dir: Path):
    return transformers.AutoTokenizer.from_pretrained(default_model_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, default_model_dir: Path, tokenizer) -> Path:
    """A 2-layer Llama (hidden 32) with the default model's tokenizer."""
    import shutil

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


def _needs_data() -> None:
    if not (DATA / "train.csv").is_file():
        pytest.skip(f"ViGGO data not found at {DATA}")


def tiny_config(model_dir: Path, output_dir: Path, **overrides) -> FinetuneConfig:
    raw = {
        "base_model": str(model_dir),
        "base_model_name": "HuggingFaceTB/SmolLM2-135M-Instruct",
        "data": {"source": str(DATA), "max_train_samples": 12, "max_eval_samples": 4, "cutoff_len": 320},
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


# --- config ----------------------------------------------------------------------------------------
def test_shipped_configs_validate():
    for path in sorted((REPO / "finetune" / "configs").glob("*.yaml")):
        config = load_config(path)
        assert config.lora.r <= 16, f"{path.name}: rank above the service's max_lora_rank"
    full = load_config(REPO / "finetune" / "configs" / "viggo-smollm2.yaml")
    assert full.base_model is None and full.data.max_train_samples is None and full.max_steps is None
    assert full.lora.target_modules == ALL_LINEAR


def test_config_rejects_unknown_keys_and_bad_values(tmp_path):
    from pydantic import ValidationError

    bad = tmp_path / "bad.yaml"
    bad.write_text("lora:\n  rank: 8\n")
    with pytest.raises(ValidationError):
        load_config(bad)
    with pytest.raises(ValidationError):
        FinetuneConfig.model_validate({"upload_to": "http://not-s3"})
    with pytest.raises(ValidationError):
        FinetuneConfig.model_validate({"learning_rate": 0})


def test_cli_overrides_apply(tmp_path):
    from finetune.cli import build_parser

    args = build_parser().parse_args(["--config", "x.yaml", "--max-steps", "5", "--output-dir", str(tmp_path)])
    config = load_config(
        REPO / "finetune" / "configs" / "viggo-smollm2.yaml",
        max_steps=args.max_steps,
        output_dir=args.output_dir,
        **{"data.max_train_samples": 7},
    )
    assert config.max_steps == 5 and config.output_dir == tmp_path and config.data.max_train_samples == 7
    assert config.data.cutoff_len == 384  # untouched keys keep the file's values


# --- tokenisation ------------------------------------------------------------------------------------
def test_prompt_is_the_inference_prompt_and_target_ends_the_turn(tokenizer):
    from viggo.prompt import build_messages

    sentence = "Is that the M rated PC game BioShock?"
    expected = tokenizer.apply_chat_template(build_messages(sentence), tokenize=False, add_generation_prompt=True)
    assert render_prompt(tokenizer, sentence) == expected
    assert end_of_turn_token(tokenizer) == "<|im_end|>"


def test_labels_mask_the_prompt(tokenizer):
    example = ViggoExample(
        "Is that the M rated PC game BioShock?", "confirm(name[BioShock], esrb[M (for Mature)], platforms[PC])"
    )
    dataset, dropped = encode_examples(tokenizer, [example], cutoff_len=512)
    assert dropped == 0
    item = dataset[0]
    prompt_ids = tokenizer(render_prompt(tokenizer, example.sentence), add_special_tokens=False)["input_ids"]
    mr_ids = tokenizer(example.mr, add_special_tokens=False)["input_ids"]
    first = next(i for i, label in enumerate(item["labels"]) if label != IGNORE_INDEX)
    assert first == len(prompt_ids)
    assert item["input_ids"][:first] == prompt_ids
    assert item["labels"][first] == mr_ids[0]  # the first supervised token is the MR's first token
    assert tokenizer.decode(item["labels"][first:]) == example.mr + "<|im_end|>"
    assert item["labels"][-1] == tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_collator_pads_with_ignored_labels(tokenizer):
    examples = [
        ViggoExample("Are you a Linux gamer?", "request_attribute(has_linux_release[])"),
        ViggoExample("Do you like PlayStation games like Portal 2?", "suggest(name[Portal 2], platforms[PlayStation])"),
    ]
    dataset, _ = encode_examples(tokenizer, examples, cutoff_len=512)
    batch = CausalLMCollator(tokenizer.pad_token_id)([dataset[0], dataset[1]])
    lengths = [len(dataset[i]["input_ids"]) for i in range(2)]
    short = lengths.index(min(lengths))
    assert batch["input_ids"].shape == (2, max(lengths))
    assert batch["attention_mask"][short].sum().item() == min(lengths)
    assert (batch["labels"][short, min(lengths) :] == IGNORE_INDEX).all()
    assert (batch["input_ids"][short, min(lengths) :] == tokenizer.pad_token_id).all()


def test_too_long_examples_are_dropped(tokenizer):
    example = ViggoExample("Are you a Linux gamer?", "request_attribute(has_linux_release[])")
    dataset, dropped = encode_examples(tokenizer, [example], cutoff_len=64)
    assert len(dataset) == 0 and dropped == 1


def test_alpaca_jsonl_is_accepted(tmp_path, tokenizer):
    records = [
        {"instruction": "x", "input": "Are you a Linux gamer?", "output": "request_attribute(has_linux_release[])"}
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    dataset, _ = encode_examples(tokenizer, load_examples(path, "train"), cutoff_len=512)
    assert len(dataset) == 1


# --- training ----------------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def trained(tmp_path_factory, tiny_model_dir):
    """3 steps from scratch, then a second run to max_steps 5 that resumes from checkpoint-3."""
    _needs_data()
    from finetune.train import train

    output = tmp_path_factory.mktemp("ft") / "run"
    first = train(tiny_config(tiny_model_dir, output))
    first_results = json.loads((output / "all_results.json").read_text())
    second = train(tiny_config(tiny_model_dir, output, max_steps=5))
    return output, first, first_results, second


def test_training_writes_a_vllm_loadable_adapter(trained):
    from safetensors import safe_open

    output, adapter, results, _ = trained
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


def test_training_writes_metrics_plot_and_config(trained):
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


def test_second_run_resumes_from_the_checkpoint(trained):
    output, _, _, adapter = trained
    results = json.loads((output / "all_results.json").read_text())
    assert results["train_resumed_from_step"] == 3
    assert results["train_steps"] == 5
    state = json.loads((output / "trainer_state.json").read_text())
    logged = [e["step"] for e in state["log_history"] if "loss" in e]
    assert logged[-2:] == [4, 5]
    assert (output / "checkpoint-5").is_dir()
    assert (adapter / "adapter_model.safetensors").is_file()


def test_cli_runs_a_step_and_fails_cleanly_on_a_bad_config(tmp_path, tiny_model_dir, capsys):
    _needs_data()
    import yaml

    from finetune.cli import main

    config = tiny_config(tiny_model_dir, tmp_path / "out", max_steps=1)
    path = tmp_path / "c.yaml"
    path.write_text(yaml.safe_dump(config.model_dump(mode="json")))
    assert main(["--config", str(path), "--max-steps", "1", "--output-dir", str(tmp_path / "cli")]) == 0
    assert (tmp_path / "cli" / "adapter" / "adapter_model.safetensors").is_file()
    path.write_text("epochs: 3\n")
    assert main(["--config", str(path)]) == 2
    assert "invalid config" in capsys.readouterr().err


def test_shipped_adapter_is_complete():
    folder = REPO / "finetune" / "adapters" / "viggo-smollm2"
    if not folder.is_dir():
        pytest.skip("no trained adapter shipped")
    config = json.loads((folder / "adapter_config.json").read_text())
    assert config["r"] <= 16 and set(config["target_modules"]) == set(ALL_LINEAR)
    assert config["base_model_name_or_path"].endswith("SmolLM2-135M-Instruct")
    assert (folder / "adapter_model.safetensors").stat().st_size < 20 * 2**20
    assert json.loads((folder / "eval_valid.json").read_text())["exact_match"] >= 0.5
