"""LoRA fine-tuning with peft + transformers' Trainer (single process, or many through accelerate/torchrun)."""

from __future__ import annotations

import inspect
import json
import math
import os
import shutil
import sys
import time
from pathlib import Path
from typing import Any

from finetune.config import DEFAULT_BASE_NAME, FinetuneConfig, dump_config
from serving.sources import SourceKind, s3_artifact_name, source_kind

RESULTS_FILE = "all_results.json"
CONFIG_FILE = "finetune_config.yaml"
PLOT_FILE = "training_loss.png"
ADAPTER_FILES = ("adapter_config.json", "adapter_model.safetensors")


def _log(message: str) -> None:
    if int(os.environ.get("RANK", "0")) == 0:
        print(f"[finetune] {message}", file=sys.stderr, flush=True)


def resolve_base_model(config: FinetuneConfig) -> tuple[str, str]:
    """(what from_pretrained loads, what the adapter names as its base)."""
    spec = config.base_model
    if spec is None or spec == "default":
        from serving.default_model import ensure_default_model

        return str(ensure_default_model(config.cache_dir)), config.base_model_name or DEFAULT_BASE_NAME
    kind = source_kind(spec)
    if kind is SourceKind.S3:
        from serving.s3 import fetch

        local = fetch(spec, config.cache_dir / "models", endpoint_url=config.s3_endpoint_url, what="model")
        return str(local), config.base_model_name or s3_artifact_name(spec)
    if kind is SourceKind.LOCAL:
        local = Path(spec).expanduser().resolve()
        if not local.is_dir():
            raise FileNotFoundError(f"base_model {spec!r}: no such folder, and not a Hub id or s3:// URI")
        return str(local), config.base_model_name or str(local)
    return spec, config.base_model_name or spec  # a Hugging Face id


def last_checkpoint(output_dir: Path) -> Path | None:
    from transformers.trainer_utils import get_last_checkpoint

    if not output_dir.is_dir():
        return None
    found = get_last_checkpoint(str(output_dir))
    return Path(found) if found else None


def _precision(config: FinetuneConfig) -> dict[str, bool]:
    import torch

    choice = config.precision
    if choice == "auto":
        choice = "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    # bf16 autocast also runs on a CPU with AMX/AVX-512 bf16 (~1.5x fp32 there); transformers asks for use_cpu then.
    cpu_bf16 = choice == "bf16" and not torch.cuda.is_available()
    return {"bf16": choice == "bf16", "fp16": choice == "fp16"} | ({"use_cpu": True} if cpu_bf16 else {})


def _training_arguments(config: FinetuneConfig, num_train: int, has_eval: bool) -> Any:
    from transformers import TrainingArguments

    world = int(os.environ.get("WORLD_SIZE", "1"))
    per_step = config.batch_size * config.gradient_accumulation_steps * world
    total = config.max_steps or math.ceil(math.ceil(num_train / per_step) * config.num_train_epochs)
    eval_strategy = config.eval.strategy if has_eval else "no"
    kwargs: dict[str, Any] = dict(
        output_dir=str(config.output_dir),
        num_train_epochs=config.num_train_epochs,
        max_steps=config.max_steps or -1,
        learning_rate=config.learning_rate,
        lr_scheduler_type=config.lr_scheduler_type,
        warmup_steps=round(config.warmup_ratio * total),  # an int works on every transformers version
        weight_decay=config.weight_decay,
        max_grad_norm=config.max_grad_norm,
        per_device_train_batch_size=config.batch_size,
        per_device_eval_batch_size=config.eval.batch_size,
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        seed=config.seed,
        logging_steps=config.logging_steps,
        logging_first_step=True,
        eval_strategy=eval_strategy,
        eval_steps=config.eval.steps if eval_strategy == "steps" else None,
        save_strategy="steps",
        save_steps=config.save_steps,
        save_total_limit=config.save_total_limit,
        gradient_checkpointing=config.gradient_checkpointing,
        dataloader_num_workers=config.dataloader_num_workers,
        remove_unused_columns=False,
        report_to=config.report_to or "none",
        ddp_find_unused_parameters=False,
        disable_tqdm=False,
        **_precision(config),
    )
    accepted = inspect.signature(TrainingArguments.__init__).parameters
    return TrainingArguments(**{k: v for k, v in kwargs.items() if k in accepted})


def _save_adapter(model: Any, adapter_dir: Path, base_name: str, save_dtype: str | None) -> None:
    """PEFT's own safetensors save, then the base model's name, then (optionally) a smaller dtype."""
    import torch
    from safetensors.torch import load_file, save_file

    if adapter_dir.exists():
        shutil.rmtree(adapter_dir)
    model.save_pretrained(str(adapter_dir), safe_serialization=True)
    config_path = adapter_dir / "adapter_config.json"
    adapter_config = json.loads(config_path.read_text())
    adapter_config["base_model_name_or_path"] = base_name
    config_path.write_text(json.dumps(adapter_config, indent=2, sort_keys=True) + "\n")
    if save_dtype:
        weights = adapter_dir / "adapter_model.safetensors"
        dtype = getattr(torch, save_dtype)
        tensors = {name: t.to(dtype).contiguous() for name, t in load_file(str(weights)).items()}
        save_file(tensors, str(weights), metadata={"format": "pt"})
    for name in ADAPTER_FILES:
        if not (adapter_dir / name).is_file():
            raise RuntimeError(f"peft did not write {name} to {adapter_dir}")


def train(config: FinetuneConfig) -> Path:
    """Train the LoRA adapter the config describes; return its folder (`output_dir/adapter`)."""
    import torch
    from peft import LoraConfig as PeftLoraConfig
    from peft import get_peft_model
    from transformers import AutoModelForCausalLM, AutoTokenizer, Trainer, set_seed

    from finetune.data import CausalLMCollator, encode_examples
    from finetune.plot import plot_training_loss
    from finetune.tasks import load_pairs

    if config.torch_threads:
        torch.set_num_threads(config.torch_threads)
    output_dir = config.output_dir
    output_dir.mkdir(parents=True, exist_ok=True)

    checkpoint = last_checkpoint(output_dir)
    if config.resume == "never":
        checkpoint = None
    elif config.resume == "always" and checkpoint is None:
        raise FileNotFoundError(f"resume requested, but {output_dir} holds no checkpoint-* folder")
    if checkpoint:
        _log(f"resuming from {checkpoint}")

    set_seed(config.seed)
    base_path, base_name = resolve_base_model(config)
    _log(f"base model: {base_path} (adapter names it {base_name!r})")
    tokenizer = AutoTokenizer.from_pretrained(base_path)
    if tokenizer.pad_token_id is None:
        tokenizer.pad_token = tokenizer.eos_token

    data = config.data
    train_examples = load_pairs(data.task, data.source, data.train_split)[: data.max_train_samples]
    train_set, dropped = encode_examples(
        tokenizer, train_examples, data.cutoff_len, drop_long=data.drop_long, desc="tokenising train"
    )
    if not len(train_set):
        raise ValueError(f"no training example fits cutoff_len={data.cutoff_len}")
    _log(f"train: {len(train_set)} examples ({dropped} over cutoff_len {data.cutoff_len} dropped)")
    eval_set = None
    if data.eval_split:
        eval_examples = load_pairs(data.task, data.eval_source or data.source, data.eval_split)[: data.max_eval_samples]
        eval_set, _ = encode_examples(
            tokenizer, eval_examples, data.cutoff_len, drop_long=data.drop_long, desc="tokenising eval"
        )

    # fp32 master weights for the base (small models); mixed precision comes from bf16/fp16 autocast.
    base = AutoModelForCausalLM.from_pretrained(base_path, dtype=torch.float32)
    base.config.use_cache = False
    lora = PeftLoraConfig(
        r=config.lora.r,
        lora_alpha=config.lora.alpha,
        lora_dropout=config.lora.dropout,
        target_modules=config.lora.target_modules,
        bias="none",
        task_type="CAUSAL_LM",
    )
    model = get_peft_model(base, lora)
    if config.gradient_checkpointing:
        model.enable_input_require_grads()
    if int(os.environ.get("RANK", "0")) == 0:
        model.print_trainable_parameters()

    args = _training_arguments(config, len(train_set), eval_set is not None)
    trainer = Trainer(
        model=model,
        args=args,
        data_collator=CausalLMCollator(
            tokenizer.pad_token_id, pad_to_multiple_of=8 if torch.cuda.is_available() else None
        ),
        train_dataset=train_set,
        eval_dataset=eval_set,
        processing_class=tokenizer,
    )
    started = time.perf_counter()
    result = trainer.train(resume_from_checkpoint=str(checkpoint) if checkpoint else None)
    metrics = dict(result.metrics)
    metrics["train_steps"] = trainer.state.global_step
    metrics["train_samples"] = len(train_set)
    metrics["train_resumed_from_step"] = int(checkpoint.name.rsplit("-", 1)[-1]) if checkpoint else 0
    metrics["train_wall_s"] = round(time.perf_counter() - started, 2)
    trainer.save_metrics("train", metrics)
    if eval_set is not None and config.eval.at_end:
        eval_metrics = trainer.evaluate()
        eval_metrics["eval_samples"] = len(eval_set)
        trainer.save_metrics("eval", eval_metrics)
    trainer.save_state()

    adapter_dir = config.adapter_dir
    if trainer.is_world_process_zero():
        _save_adapter(trainer.model, adapter_dir, base_name, config.save_dtype)
        dump_config(config, output_dir / CONFIG_FILE)
        plot_training_loss(
            trainer.state.log_history, output_dir / PLOT_FILE, title=f"LoRA r={config.lora.r} on {base_name}"
        )
        for name in (RESULTS_FILE, CONFIG_FILE, PLOT_FILE):
            if (output_dir / name).exists():
                shutil.copy2(output_dir / name, adapter_dir / name)
        _log(f"adapter written to {adapter_dir}")
        if config.upload_to:
            from finetune.upload import upload_folder

            upload_folder(adapter_dir, config.upload_to, endpoint_url=config.s3_endpoint_url)
    trainer.accelerator.wait_for_everyone()
    return adapter_dir
