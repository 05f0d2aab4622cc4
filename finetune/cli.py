"""`python -m finetune --config FILE.yaml [--max-steps N] [--output-dir DIR] ...` (also under accelerate/torchrun)."""

from __future__ import annotations

import argparse
import sys

from pydantic import ValidationError


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="python -m finetune",
        description="Train a LoRA adapter: ViGGO MRs or NER labelling (the config's data.task).",
    )
    parser.add_argument("--config", required=True, help="YAML config (see finetune/configs/)")
    parser.add_argument("--output-dir", help="override output_dir")
    parser.add_argument("--max-steps", type=int, help="override max_steps (e.g. a few steps in CI)")
    parser.add_argument("--epochs", type=float, dest="num_train_epochs", help="override num_train_epochs")
    parser.add_argument("--learning-rate", type=float, help="override learning_rate")
    parser.add_argument("--batch-size", type=int, help="override batch_size (per device)")
    parser.add_argument("--max-train-samples", type=int, help="override data.max_train_samples")
    parser.add_argument("--max-eval-samples", type=int, help="override data.max_eval_samples")
    parser.add_argument("--base-model", help="override base_model (folder, Hub id or s3://)")
    parser.add_argument("--base-model-name", help="override base_model_name (the adapter's base_model_name_or_path)")
    parser.add_argument("--data", dest="data_source", help="override data.source")
    parser.add_argument("--upload-to", help="override upload_to (s3://bucket/prefix)")
    parser.add_argument("--torch-threads", type=int, help="override torch_threads")
    resume = parser.add_mutually_exclusive_group()
    resume.add_argument(
        "--resume",
        action="store_const",
        const="always",
        dest="resume",
        help="resume from the last checkpoint in output_dir (fail if none)",
    )
    resume.add_argument(
        "--no-resume",
        action="store_const",
        const="never",
        dest="resume",
        help="start afresh even if output_dir has checkpoints",
    )
    return parser


def main(argv: list[str] | None = None) -> int:
    from finetune.config import load_config

    args = build_parser().parse_args(argv)
    overrides = {
        "output_dir": args.output_dir,
        "max_steps": args.max_steps,
        "num_train_epochs": args.num_train_epochs,
        "learning_rate": args.learning_rate,
        "batch_size": args.batch_size,
        "data.max_train_samples": args.max_train_samples,
        "data.max_eval_samples": args.max_eval_samples,
        "data.source": args.data_source,
        "base_model": args.base_model,
        "base_model_name": args.base_model_name,
        "upload_to": args.upload_to,
        "torch_threads": args.torch_threads,
        "resume": args.resume,
    }
    try:
        config = load_config(args.config, **overrides)
    except (ValidationError, ValueError, FileNotFoundError) as exc:
        print(f"invalid config {args.config}:\n{exc}", file=sys.stderr)
        return 2
    from finetune.train import train

    adapter = train(config)
    print(adapter)
    return 0
