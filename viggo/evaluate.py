"""Evaluate sentence -> MR on a ViGGO split: `python -m viggo.evaluate [--url URL] [--limit N] ...`.

Without `--url` it starts an engine in this process (like the service does); with `--url` it drives
a running service's `POST /viggo`. Either way all sentences are in flight at once (bounded by
`--concurrency` over HTTP) so the figure is the engine's batched throughput.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import get_args

from tqdm.auto import tqdm

from serving.paths import VIGGO_DATA
from viggo.dataset import HUB_DATASET, ViggoExample, load_examples
from viggo.grammar import SpanValues
from viggo.metrics import ViggoScores, score, score_by_act

LOCAL_DATA = VIGGO_DATA


@dataclass(frozen=True)
class Outcome:
    prediction: str | None  # the model's MR text (possibly malformed), None when no text came back
    error: str | None = None
    redecoded: bool = False  # decoded a second time with open values from the sentence (`viggo_span_values`)


def _lora_rank(path: Path) -> int | None:
    config = path / "adapter_config.json"
    return json.loads(config.read_text()).get("r") if config.is_file() else None


def run_local(args: argparse.Namespace, sentences: Sequence[str]) -> tuple[list[Outcome], float]:
    from serving.engine import local_generator
    from serving.settings import ServiceSettings
    from viggo.predictor import ViggoOutputError, ViggoPredictor

    adapter_name, folders, rank = None, {}, None
    if args.adapter:
        adapter_name, _, raw_path = args.adapter.partition("=")
        if not raw_path:
            raise SystemExit("--adapter needs NAME=PATH without --url (the adapter to load into the local engine)")
        folders[adapter_name] = raw_path
        rank = _lora_rank(Path(raw_path).expanduser())
    settings = ServiceSettings(
        model=args.model,
        max_model_len=args.max_model_len,
        kv_cache_memory_bytes=args.kv_cache_gib << 30,
        max_num_seqs=args.max_num_seqs,
        # LoRA support costs memory and speed; only pay for it when an adapter is evaluated.
        enable_lora=bool(folders),
        # As the service serves it (its default max_lora_rank), unless the adapter needs more.
        max_lora_rank=max(ServiceSettings.model_fields["max_lora_rank"].default, rank or 0),
    )

    async def predict_all(predictor: ViggoPredictor) -> tuple[list[Outcome], float]:
        started = time.perf_counter()
        results = await predictor.predict_many(sentences, adapter_name, few_shot=args.few_shot)
        elapsed = time.perf_counter() - started
        outcomes = [
            Outcome(result.text, str(result))
            if isinstance(result, ViggoOutputError)
            else Outcome(result.mr, redecoded=result.redecoded)
            for result in results
        ]
        return outcomes, elapsed

    with local_generator(settings, folders) as generator:
        predictor = ViggoPredictor(generator, max_tokens=args.max_tokens, span_values=args.span_values)
        return asyncio.run(predict_all(predictor))


async def run_http(args: argparse.Namespace, sentences: Sequence[str]) -> tuple[list[Outcome], float]:
    import httpx

    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    limit = asyncio.Semaphore(args.concurrency)
    bar = tqdm(total=len(sentences), desc="viggo", unit="sentence")

    async def one(client: httpx.AsyncClient, sentence: str) -> Outcome:
        body = {"sentence": sentence, "adapter": args.adapter}
        try:
            async with limit:
                response = await client.post("/viggo", json=body)
            if response.is_success:
                answer = response.json()
                return Outcome(answer["mr"], redecoded=answer.get("redecoded", False))
            return Outcome(None, f"HTTP {response.status_code}: {response.text[:500]}")
        except httpx.HTTPError as error:
            return Outcome(None, f"{type(error).__name__}: {error}")
        finally:
            bar.update()

    timeout = httpx.Timeout(args.timeout, connect=30.0)
    limits = httpx.Limits(max_connections=args.concurrency)
    async with httpx.AsyncClient(
        base_url=args.url.rstrip("/"), headers=headers, timeout=timeout, limits=limits
    ) as client:
        started = time.perf_counter()
        try:
            outcomes = await asyncio.gather(*(one(client, sentence) for sentence in sentences))
        finally:
            bar.close()
        return list(outcomes), time.perf_counter() - started


def write_predictions(path: Path, examples: Sequence[ViggoExample], outcomes: Sequence[Outcome]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    with path.open("w", encoding="utf-8") as handle:
        for example, outcome in zip(examples, outcomes, strict=True):
            record = {
                "sentence": example.sentence,
                "reference": example.mr,
                "prediction": outcome.prediction,
                "exact_match": outcome.prediction == example.mr,
                "redecoded": outcome.redecoded,
                "error": outcome.error,
            }
            handle.write(json.dumps(record, ensure_ascii=False) + "\n")


def format_table(scores: ViggoScores, sentences_per_s: float, redecoded: int) -> str:
    rows = [
        ("sentences", f"{scores.count}"),
        ("exact match", f"{scores.exact_match:.1%}"),
        ("act accuracy", f"{scores.act_accuracy:.1%}"),
        ("slot precision", f"{scores.slot_precision:.1%}"),
        ("slot recall", f"{scores.slot_recall:.1%}"),
        ("slot F1", f"{scores.slot_f1:.1%}"),
        ("parse rate", f"{scores.parse_rate:.1%}"),
        ("sentences/s", f"{sentences_per_s:.2f}"),
        ("redecoded", f"{redecoded}"),
    ]
    width = max(len(name) for name, _ in rows)
    return "\n".join(f"{name:<{width}}  {value:>8}" for name, value in rows)


def format_acts(by_act: dict[str, ViggoScores]) -> str:
    """One line per reference act, most frequent first: exact match, act accuracy and slot F1."""
    width = max((len(act) for act in by_act), default=3)
    lines = [f"{'act':<{width}}  {'count':>5}  {'exact':>6}  {'act acc':>7}  {'slot F1':>7}"]
    for act, scores in sorted(by_act.items(), key=lambda item: -item[1].count):
        lines.append(f"{act:<{width}}  {scores.count:>5}  {scores.exact_match:>6.1%}  "
                     f"{scores.act_accuracy:>7.1%}  {scores.slot_f1:>7.1%}")  # fmt: skip
    return "\n".join(lines)


def parse_args(argv: Sequence[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m viggo.evaluate", description=__doc__.splitlines()[0])
    parser.add_argument("--data", default=str(LOCAL_DATA) if LOCAL_DATA.is_dir() else HUB_DATASET,
                        help="folder of {split}.csv/.jsonl, a .csv or alpaca .jsonl file, or GEM/viggo")  # fmt: skip
    parser.add_argument("--split", default="valid")
    parser.add_argument("--limit", type=int, help="evaluate only the first N examples")
    parser.add_argument("--out", type=Path, help="write one JSON line per example here")
    parser.add_argument("--json-out", type=Path, help="write the metrics as JSON here")
    parser.add_argument("--url", help="base URL of a running service; default: start an engine in-process")
    parser.add_argument("--adapter", help="NAME=PATH: load this LoRA adapter locally and use it; "
                        "with --url, NAME of an adapter the service has")  # fmt: skip
    few_shot = parser.add_mutually_exclusive_group()
    few_shot.add_argument("--few-shot", dest="few_shot", action="store_true", default=None,
                          help="always show the few-shot examples (default: only without an adapter)")  # fmt: skip
    few_shot.add_argument("--no-few-shot", dest="few_shot", action="store_false")
    local = parser.add_argument_group("in-process engine")
    local.add_argument("--model", help="model id, folder or s3:// URI (default: the service's default model)")
    local.add_argument("--max-model-len", type=int, default=2048)
    local.add_argument("--max-num-seqs", type=int, default=64)
    local.add_argument("--kv-cache-gib", type=int, default=1)
    local.add_argument("--max-tokens", type=int, default=160)
    local.add_argument(
        "--span-values",
        nargs="?",
        const="always",
        choices=get_args(SpanValues),
        help="open-slot values from the sentence's words (the service's viggo_span_values; default: as the "
        "service, redecode); alone: always",
    )
    remote = parser.add_argument_group("--url mode")
    remote.add_argument("--concurrency", type=int, default=32)
    remote.add_argument("--timeout", type=float, default=600.0, help="seconds per request")
    remote.add_argument("--api-key", default=os.environ.get("API_KEY"), help="bearer token (default: $API_KEY)")
    args = parser.parse_args(argv)
    if args.url and args.few_shot is not None:
        parser.error("--few-shot/--no-few-shot apply to the in-process engine; the service decides over HTTP")
    if args.url and args.span_values is not None:
        parser.error("--span-values applies to the in-process engine; over HTTP the service's viggo_span_values does")
    if args.span_values is None and not args.url:
        args.span_values = _service_span_values()
    return args


def _service_span_values() -> SpanValues:
    from serving.settings import ServiceSettings

    default: SpanValues = ServiceSettings.model_fields["viggo_span_values"].default
    return default


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    examples = load_examples(args.data, args.split)[: args.limit]
    sentences = [example.sentence for example in examples]
    if args.url:
        if args.adapter and "=" in args.adapter:
            raise SystemExit("with --url, --adapter names an adapter the service already has (no =PATH)")
        outcomes, elapsed = asyncio.run(run_http(args, sentences))
    else:
        outcomes, elapsed = run_local(args, sentences)
    predictions, references = [outcome.prediction for outcome in outcomes], [example.mr for example in examples]
    scores, by_act = score(predictions, references), score_by_act(predictions, references)
    redecoded = sum(outcome.redecoded for outcome in outcomes)
    throughput = len(examples) / elapsed if elapsed else 0.0
    if args.out:
        write_predictions(args.out, examples, outcomes)
    if args.json_out:
        args.json_out.parent.mkdir(parents=True, exist_ok=True)
        metrics = {**scores.as_dict(), "sentences_per_s": throughput, "elapsed_s": elapsed, "redecoded": redecoded,
                   "per_act": {act: s.as_dict() for act, s in by_act.items()}, "span_values": args.span_values,
                   "data": str(args.data), "split": args.split}  # fmt: skip
        args.json_out.write_text(json.dumps(metrics, indent=2) + "\n")
    print(format_table(scores, throughput, redecoded))
    print(format_acts(by_act))
    failures = sum(outcome.error is not None for outcome in outcomes)
    if failures:
        print(f"{failures} request(s) failed; see the 'error' field of --out", file=sys.stderr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
