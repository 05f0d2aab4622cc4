"""The fine-tuning run's settings: one YAML file validated by pydantic, a few keys overridable from the CLI."""

from __future__ import annotations

from pathlib import Path
from typing import Annotated, Any, Literal

import yaml
from annotated_types import Ge, Gt, Le
from pydantic import BaseModel, ConfigDict, Field, field_validator

from serving.paths import DEFAULT_CACHE_DIR, VIGGO_DATA

DEFAULT_DATA = str(VIGGO_DATA)
ALL_LINEAR = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
# What the adapter names as its base when the offline default model was used: the Hub id of the
# model the GGUF was made from. Its last component matches the served name, which is what the
# service compares (serving.adapters._same_model).
DEFAULT_BASE_NAME = "HuggingFaceTB/SmolLM2-135M-Instruct"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class DataConfig(_Strict):
    task: Literal["viggo", "ner"] = Field(
        "viggo", description="viggo: sentence -> MR; ner: the NER labelling prompt -> its labels (finetune.tasks)."
    )
    source: str = Field(
        DEFAULT_DATA,
        description="viggo: a folder with {split}.csv/.jsonl, a .csv (mr, ref), an alpaca .jsonl "
        "(instruction/input/output), or the Hub dataset 'GEM/viggo'. ner: a gold .jsonl (as ner/data) or a "
        "folder of {split}.jsonl files.",
    )
    train_split: str = Field("train", description="For ner a glob may stand here: 'train-*'.")
    eval_split: str | None = Field("valid", description="None: no evaluation.")
    eval_source: str | None = Field(
        None, description="Where the eval split lives if not in `source` (e.g. a 2nd JSONL)."
    )
    max_train_samples: Annotated[int, Ge(1)] | None = Field(None, description="Keep the first N training examples.")
    max_eval_samples: Annotated[int, Ge(1)] | None = None
    cutoff_len: Annotated[int, Ge(16)] = Field(
        384, description="Max tokens of prompt + response; longer ones are dropped (or truncated, see `drop_long`)."
    )
    drop_long: bool = Field(True, description="Drop examples longer than cutoff_len instead of truncating them.")


class LoraConfig(_Strict):
    r: Annotated[int, Ge(1)] = 16
    alpha: Annotated[int, Ge(1)] = 32
    dropout: Annotated[float, Ge(0), Le(1)] = 0.05
    target_modules: list[str] = Field(default_factory=lambda: list(ALL_LINEAR))

    @field_validator("target_modules")
    @classmethod
    def _non_empty(cls, value: list[str]) -> list[str]:
        if not value:
            raise ValueError("name at least one target module (default: all linear layers)")
        return value


class EvalConfig(_Strict):
    strategy: Literal["no", "steps", "epoch"] = Field("epoch", description="When to evaluate during training.")
    steps: Annotated[int, Ge(1)] | None = Field(None, description="With strategy 'steps': every N steps.")
    at_end: bool = Field(True, description="Evaluate (eval loss) once more after training.")
    batch_size: Annotated[int, Ge(1)] = 16


class FinetuneConfig(_Strict):
    base_model: str | None = Field(
        None,
        description="None: the offline default SmolLM2-135M-Instruct; else a local "
        "folder, a Hugging Face id, or s3://bucket/prefix.",
    )
    base_model_name: str | None = Field(
        None,
        description="What adapter_config.json names as the base model "
        "(default: `base_model`, or the Hub id of the default model).",
    )
    cache_dir: Path = Field(DEFAULT_CACHE_DIR, description="Where the default model lives.")
    s3_endpoint_url: str | None = None

    data: DataConfig = Field(default_factory=DataConfig)
    lora: LoraConfig = Field(default_factory=LoraConfig)
    eval: EvalConfig = Field(default_factory=EvalConfig)

    output_dir: Path = Path("finetune/runs/viggo-lora")
    num_train_epochs: Annotated[float, Gt(0)] = 1.0
    max_steps: int | None = Field(None, description="Stop after this many optimiser steps (overrides epochs).")
    learning_rate: Annotated[float, Gt(0)] = 2e-4
    lr_scheduler_type: str = "cosine"
    warmup_ratio: Annotated[float, Ge(0), Le(1)] = 0.03
    weight_decay: Annotated[float, Ge(0)] = 0.0
    max_grad_norm: Annotated[float, Gt(0)] = 1.0
    batch_size: Annotated[int, Ge(1)] = Field(8, description="Per device.")
    gradient_accumulation_steps: Annotated[int, Ge(1)] = 1
    seed: int = 42
    precision: Literal["auto", "fp32", "bf16", "fp16"] = Field(
        "auto", description="auto: bf16 autocast on a GPU that supports it, fp32 on CPU."
    )
    gradient_checkpointing: bool = False
    logging_steps: Annotated[int, Ge(1)] = 10
    save_steps: Annotated[int, Ge(1)] = 200
    save_total_limit: Annotated[int, Ge(1)] | None = 2
    resume: Literal["auto", "always", "never"] = Field(
        "auto", description="auto: resume when output_dir holds a checkpoint; always: fail if none."
    )
    torch_threads: Annotated[int, Ge(1)] | None = Field(None, description="CPU threads for torch (None: its default).")
    dataloader_num_workers: Annotated[int, Ge(0)] = 0
    report_to: list[str] = Field(default_factory=list, description="e.g. ['tensorboard']; default none.")

    save_dtype: Literal["float32", "bfloat16", "float16"] | None = Field(
        None,
        description="Cast the saved adapter weights (bfloat16 halves the file; vLLM casts to the model dtype anyway).",
    )

    upload_to: str | None = Field(None, description="s3://bucket/prefix: upload the adapter folder there at the end.")

    @field_validator("upload_to")
    @classmethod
    def _s3_uri(cls, value: str | None) -> str | None:
        if value is not None:
            from serving.s3 import S3Uri

            S3Uri.parse(value)  # raises ValueError with a clear message
        return value

    @field_validator("max_steps")
    @classmethod
    def _positive_steps(cls, value: int | None) -> int | None:
        if value is not None and value <= 0:
            return None  # -1 / 0 mean "use epochs", as in transformers
        return value

    @property
    def adapter_dir(self) -> Path:
        return self.output_dir / "adapter"


def load_config(path: str | Path | None = None, **overrides: Any) -> FinetuneConfig:
    """Read a YAML config (or defaults) and apply dotted overrides, e.g. {'data.max_train_samples': 16}."""
    raw: dict[str, Any] = {}
    if path is not None:
        text = Path(path).read_text(encoding="utf-8")
        raw = yaml.safe_load(text) or {}
        if not isinstance(raw, dict):
            raise ValueError(f"{path}: expected a mapping of config keys at the top level")
    for dotted, value in overrides.items():
        if value is None:
            continue
        node = raw
        *parents, leaf = dotted.split(".")
        for key in parents:
            node = node.setdefault(key, {})
        node[leaf] = value
    return FinetuneConfig.model_validate(raw)


def dump_config(config: FinetuneConfig, path: Path) -> None:
    path.write_text(yaml.safe_dump(config.model_dump(mode="json"), sort_keys=False), encoding="utf-8")
