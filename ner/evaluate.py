"""Score entity extraction on a gold set, through a running service (--url) or an in-process engine.

    python -m ner.evaluate --data ../shared/data/ner/dev.jsonl [more.jsonl ...] [--url http://host:port]
        [--adapter NAME] [--json-out FILE] [--plot FILE.png] [--concurrency 8] [--api-key KEY]

Matching is on the exact entity string, case-insensitive, per type; micro-F1 pools the four types.
Extraction runs without a threshold; the precision/recall curve shows what each `min_score` would keep
(an entity's score is the highest of its spans' scores).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import sys
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from pydantic import ValidationError
from tqdm import tqdm

from ner.schema import ENTITY_FIELDS, Entities, EntitySpan
from serving.paths import NER_DEV_SET

FIELDS = tuple(ENTITY_FIELDS.values())
THRESHOLDS = (0.0, 0.3, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99)


@dataclass
class GoldItem:
    id: str
    text: str
    entities: Entities


@dataclass
class Prediction:
    entities: Entities | None  # None: an error or a schema-invalid response
    dropped: int = 0
    error: str | None = None
    spans: list[EntitySpan] = field(default_factory=list)

    def score(self, name: str, entity: str) -> float:
        """An entity's score: the highest of its spans' (1.0 when none has one, e.g. an older service)."""
        key = _key(entity)
        scores = [s.score for s in self.spans if ENTITY_FIELDS[s.type] == name and _key(s.text) == key]
        known = [s for s in scores if s is not None]
        return max(known) if known else 1.0


def _key(entity: str) -> str:
    return " ".join(entity.split()).casefold()


@dataclass
class Counts:
    tp: int = 0
    fp: int = 0
    fn: int = 0

    def scores(self) -> dict[str, float]:
        precision = self.tp / (self.tp + self.fp) if self.tp + self.fp else 0.0
        recall = self.tp / (self.tp + self.fn) if self.tp + self.fn else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return {"precision": precision, "recall": recall, "f1": f1, "tp": self.tp, "fp": self.fp, "fn": self.fn}


@dataclass
class Report:
    per_type: dict[str, Counts] = field(default_factory=lambda: {name: Counts() for name in FIELDS})
    items: int = 0
    valid: int = 0
    dropped: int = 0
    errors: list[dict[str, str]] = field(default_factory=list)
    # Per item and type: the gold entities, and each predicted entity with its score (for the curve).
    scored: list[dict[str, tuple[set[str], dict[str, float]]]] = field(default_factory=list)
    mistakes: list[dict[str, Any]] = field(default_factory=list)

    def add(self, gold: GoldItem, prediction: Prediction) -> None:
        self.items += 1
        self.scored.append(
            {
                name: (
                    {_key(s) for s in getattr(gold.entities, name)},
                    {_key(s): prediction.score(name, s) for s in getattr(prediction.entities, name)}
                    if prediction.entities
                    else {},
                )
                for name in FIELDS
            }
        )
        self.dropped += prediction.dropped
        if prediction.entities is None:
            self.errors.append({"id": gold.id, "error": prediction.error or "invalid"})
        else:
            self.valid += 1
        for name in FIELDS:
            expected = {s.casefold() for s in getattr(gold.entities, name)}
            found = {s.casefold() for s in getattr(prediction.entities, name)} if prediction.entities else set()
            counts = self.per_type[name]
            counts.tp += len(expected & found)
            counts.fp += len(found - expected)
            counts.fn += len(expected - found)
            if expected != found:
                self.mistakes.append(
                    {"id": gold.id, "type": name, "missed": sorted(expected - found), "wrong": sorted(found - expected)}
                )

    def curve(self, thresholds: Sequence[float] = THRESHOLDS) -> list[dict[str, float]]:
        """Micro precision/recall/F1 if entities scored below each threshold were left out."""
        points = []
        for threshold in thresholds:
            counts = Counts()
            for item in self.scored:
                for expected, found in item.values():
                    kept = {entity for entity, score in found.items() if score >= threshold}
                    counts.tp += len(expected & kept)
                    counts.fp += len(kept - expected)
                    counts.fn += len(expected - kept)
            points.append({"threshold": threshold, **counts.scores()})
        return points

    def summary(self) -> dict[str, Any]:
        micro = Counts(*(sum(getattr(c, part) for c in self.per_type.values()) for part in ("tp", "fp", "fn")))
        return {
            "items": self.items,
            "per_type": {name: counts.scores() for name, counts in self.per_type.items()},
            "micro": micro.scores(),
            "curve": self.curve(),
            "schema_valid_rate": self.valid / self.items if self.items else 0.0,
            "dropped": self.dropped,
            "errors": self.errors,
            "mistakes": self.mistakes,
        }


def load_gold(path: Path) -> list[GoldItem]:
    items = []
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            row = json.loads(line)
            items.append(GoldItem(str(row.get("id", number)), row["text"], Entities(**row["entities"])))
    return items


def format_summary(summary: dict[str, Any]) -> str:
    lines = [f"{'type':<14}{'P':>7}{'R':>7}{'F1':>7}{'TP':>5}{'FP':>5}{'FN':>5}"]
    rows = [*summary["per_type"].items(), ("micro", summary["micro"])]
    for name, s in rows:
        lines.append(
            f"{name:<14}{s['precision']:>7.3f}{s['recall']:>7.3f}{s['f1']:>7.3f}{s['tp']:>5}{s['fp']:>5}{s['fn']:>5}"
        )
    lines.append(f"micro-F1: {summary['micro']['f1']:.3f}")
    lines.append(f"schema-valid: {summary['schema_valid_rate']:.1%} of {summary['items']} items")
    lines.append(f"grounding drops: {summary['dropped']}")
    for error in summary["errors"]:
        lines.append(f"error {error['id']}: {error['error']}")
    lines.append(f"{'min_score':<14}{'P':>7}{'R':>7}{'F1':>7}")
    for point in summary["curve"]:
        lines.append(f"{point['threshold']:<14.2f}{point['precision']:>7.3f}{point['recall']:>7.3f}{point['f1']:>7.3f}")
    return "\n".join(lines)


def plot_curve(summaries: dict[str, dict[str, Any]], path: Path, title: str) -> None:
    """One precision/recall line per gold set, its points labelled with their `min_score`."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(5, 4))
    for name, summary in summaries.items():
        fine = [point for point in summary["fine_curve"] if point["tp"] + point["fp"]]
        axes.plot([p["recall"] for p in fine], [p["precision"] for p in fine], marker=".", label=name)
        for point in summary["curve"]:
            if point["tp"] + point["fp"]:
                axes.annotate(f"{point['threshold']:.2f}", (point["recall"], point["precision"]), fontsize=7)
    axes.legend(fontsize=8)
    axes.set_xlabel("recall")
    axes.set_ylabel("precision")
    axes.set_title(title, fontsize=9)
    axes.grid(alpha=0.3)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


Predict = Callable[[str], Awaitable[Prediction]]


async def evaluate(
    gold: Sequence[GoldItem], predict: Predict, *, concurrency: int = 8, progress: bool = True
) -> Report:
    limit = asyncio.Semaphore(concurrency)

    async def one(item: GoldItem) -> Prediction:
        async with limit:
            try:
                return await predict(item.text)
            except Exception as error:  # one failed item is scored as empty and reported, not fatal
                return Prediction(None, error=f"{type(error).__name__}: {error}")

    report = Report()
    tasks = [asyncio.ensure_future(one(item)) for item in gold]
    with tqdm(total=len(tasks), desc="ner", unit="text", disable=not progress, file=sys.stderr) as bar:
        for item, task in zip(gold, tasks, strict=True):
            report.add(item, await task)
            bar.update()
    return report


def remote_predictor(client: Any, url: str, adapter: str | None) -> Predict:
    async def predict(text: str) -> Prediction:
        body: dict[str, Any] = {"text": text, "persist": False}
        if adapter:
            body["adapter"] = adapter
        response = await client.post(f"{url.rstrip('/')}/extract_entities", json=body)
        if response.status_code >= 400:
            return Prediction(None, error=f"HTTP {response.status_code}: {response.text[:200]}")
        data = response.json()
        try:
            entities = Entities.model_validate({name: data[name] for name in FIELDS})
            spans = [EntitySpan.model_validate(span) for span in data.get("spans", [])]
        except (KeyError, ValidationError) as error:
            return Prediction(None, error=f"schema-invalid response: {error}")
        return Prediction(entities, dropped=int(data.get("meta", {}).get("dropped", 0)), spans=spans)

    return predict


async def run_remote(sets: Sequence[Sequence[GoldItem]], args: argparse.Namespace) -> list[Report]:
    import httpx

    headers = {"Authorization": f"Bearer {args.api_key}"} if args.api_key else {}
    async with httpx.AsyncClient(headers=headers, timeout=args.timeout) as client:
        predict = remote_predictor(client, args.url, args.adapter)
        return [await evaluate(gold, predict, concurrency=args.concurrency) for gold in sets]


async def run_local(sets: Sequence[Sequence[GoldItem]], args: argparse.Namespace) -> list[Report]:
    from ner.extractor import EntityExtractor
    from serving.engine import local_generator
    from serving.settings import ServiceSettings

    name, _, folder = (args.adapter or "").partition("=")
    if name and not folder:
        raise SystemExit("--adapter needs NAME=PATH without --url (the adapter to load into the local engine)")
    settings = ServiceSettings(kv_cache_memory_bytes=1 << 30, max_num_seqs=64, enable_lora=bool(name))
    with local_generator(settings, {name: folder} if name else None) as generator:
        # A local adapter is a tuned labelling adapter (finetune.tasks): asked with the prompt it learnt.
        extractor = EntityExtractor(generator, max_text_chars=settings.max_text_chars, labelling_adapter=name or None)

        async def predict(text: str) -> Prediction:
            extraction = await extractor.extract(text, adapter=name or None)
            return Prediction(extraction.entities(), dropped=extraction.dropped, spans=extraction.spans)

        return [await evaluate(gold, predict, concurrency=args.concurrency) for gold in sets]


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m ner.evaluate", description=__doc__.split("\n")[0])
    parser.add_argument(
        "--data",
        type=Path,
        nargs="+",
        default=[NER_DEV_SET],
        help="JSONL: {id, text, entities: {persons, ...}} (default: the dev set); several: one engine scores each",
    )
    parser.add_argument("--url", help="base URL of a running service; default: an in-process engine")
    parser.add_argument(
        "--adapter", help="with --url: NAME of an adapter the service has; else NAME=PATH to load locally"
    )
    parser.add_argument("--json-out", type=Path, help="write the full report here")
    parser.add_argument("--plot", type=Path, help="write the precision/recall curve over min_score here (PNG)")
    parser.add_argument("--concurrency", type=int, default=8)
    parser.add_argument("--timeout", type=float, default=300.0, help="per request, seconds (--url)")
    parser.add_argument("--api-key", default=os.environ.get("API_KEY"), help="Bearer token (default: $API_KEY)")
    args = parser.parse_args(argv)

    sets = [load_gold(path) for path in args.data]
    reports = asyncio.run(run_remote(sets, args) if args.url else run_local(sets, args))
    summaries: dict[str, dict[str, Any]] = {}
    for path, report in zip(args.data, reports, strict=True):
        summary = summaries[path.name] = report.summary()
        summary["fine_curve"] = report.curve([i / 100 for i in range(101)])
        if len(args.data) > 1:
            print(f"== {path}")
        print(format_summary(summary))
    if args.plot:
        plot_curve(summaries, args.plot, "NER precision/recall over min_score")
    if args.json_out:
        written = summaries if len(args.data) > 1 else summaries[args.data[0].name]
        args.json_out.write_text(json.dumps(written, indent=2) + "\n", encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
