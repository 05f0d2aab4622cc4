"""finetune/ configuration: shipped configs validate, bad keys and values are refused, CLI overrides apply."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from finetune.cli import build_parser
from finetune.config import ALL_LINEAR, FinetuneConfig, load_config
from serving.paths import REPO_ROOT
from serving.settings import ServiceSettings


def test_shipped_configs_validate() -> None:
    max_lora_rank = ServiceSettings.model_fields["max_lora_rank"].default
    for path in sorted((REPO_ROOT / "finetune" / "configs").glob("*.yaml")):
        config = load_config(path)
        assert config.lora.r <= max_lora_rank, f"{path.name}: rank above the service's max_lora_rank"
    full = load_config(REPO_ROOT / "finetune" / "configs" / "viggo-smollm2.yaml")
    assert full.base_model is None and full.data.max_train_samples is None and full.max_steps is None
    assert full.lora.target_modules == ALL_LINEAR


def test_config_rejects_unknown_keys_and_bad_values(tmp_path: Path) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("lora:\n  rank: 8\n")
    with pytest.raises(ValidationError):
        load_config(bad)
    with pytest.raises(ValidationError):
        FinetuneConfig.model_validate({"upload_to": "http://not-s3"})
    with pytest.raises(ValidationError):
        FinetuneConfig.model_validate({"learning_rate": 0})


def test_cli_overrides_apply(tmp_path: Path) -> None:
    args = build_parser().parse_args(["--config", "x.yaml", "--max-steps", "5", "--output-dir", str(tmp_path)])
    config = load_config(
        REPO_ROOT / "finetune" / "configs" / "viggo-smollm2.yaml",
        max_steps=args.max_steps,
        output_dir=args.output_dir,
        **{"data.max_train_samples": 7},
    )
    assert config.max_steps == 5 and config.output_dir == tmp_path and config.data.max_train_samples == 7
    assert config.data.cutoff_len == 384  # untouched keys keep the file's values
