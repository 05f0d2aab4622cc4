"""Loading ViGGO examples (sentence -> MR) from the local CSV copy, alpaca JSONL, or the Hub."""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HUB_DATASET = "GEM/viggo"
# The Hub dataset calls the development split "validation"; the local copy calls it "valid".
_HUB_SPLITS = {"valid": "validation", "dev": "validation"}


@dataclass(frozen=True)
class ViggoExample:
    sentence: str
    mr: str


def load_examples(source: str | Path, split: str = "valid") -> list[ViggoExample]:
    """Examples of one split from a folder (`{split}.csv` or `{split}.jsonl`), a .csv file
    (columns `mr`, `ref`), a .jsonl file in the alpaca layout (`input`, `output`), or the Hub
    dataset `GEM/viggo`. A file path ignores `split`."""
    path = Path(source)
    if path.is_dir():
        for candidate in (path / f"{split}.csv", path / f"{split}.jsonl"):
            if candidate.is_file():
                path = candidate
                break
        else:
            raise FileNotFoundError(f"no {split}.csv or {split}.jsonl in {path}")
    if path.is_file():
        if path.suffix == ".csv":
            return _load_csv(path)
        if path.suffix in (".jsonl", ".json"):
            return _load_alpaca_jsonl(path)
        raise ValueError(f"{path}: expected a .csv or .jsonl file")
    if str(source) == HUB_DATASET:
        return _load_hub(split)
    raise FileNotFoundError(f"{source}: not a file or folder, and not the Hub dataset {HUB_DATASET!r}")


def to_alpaca(examples: Iterable[ViggoExample]) -> list[dict[str, str]]:
    """The alpaca records (instruction, input, output) a fine-tuning run trains on."""
    from viggo.prompt import SYSTEM_INSTRUCTION  # here, not at the top: viggo.prompt imports this module

    return [{"instruction": SYSTEM_INSTRUCTION, "input": ex.sentence, "output": ex.mr} for ex in examples]


def _load_csv(path: Path) -> list[ViggoExample]:
    with path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        missing = {"mr", "ref"} - set(reader.fieldnames or ())
        if missing:
            raise ValueError(f"{path}: missing column(s) {sorted(missing)}; expected 'mr' and 'ref'")
        return [ViggoExample(sentence=row["ref"], mr=row["mr"]) for row in reader]


def _load_alpaca_jsonl(path: Path) -> list[ViggoExample]:
    examples = []
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, 1):
            if not line.strip():
                continue
            record: dict[str, Any] = json.loads(line)
            if "input" not in record or "output" not in record:
                raise ValueError(f"{path}:{number}: an alpaca record needs 'input' (sentence) and 'output' (MR)")
            examples.append(ViggoExample(sentence=record["input"], mr=record["output"]))
    return examples


def _load_hub(split: str) -> list[ViggoExample]:
    try:
        import datasets
    except ImportError as exc:
        raise RuntimeError(
            f"loading {HUB_DATASET} needs the `datasets` package (pip install datasets) and network access "
            "to the Hugging Face Hub; or pass a local folder/CSV/JSONL instead"
        ) from exc
    try:
        rows = datasets.load_dataset(HUB_DATASET, split=_HUB_SPLITS.get(split, split))
    except Exception as exc:  # offline, unknown split, Hub errors: all need the same advice
        raise RuntimeError(
            f"could not load {HUB_DATASET} split {split!r} from the Hugging Face Hub (needs network access): {exc}"
        ) from exc
    return [ViggoExample(sentence=row["target"], mr=row["meaning_representation"]) for row in rows]
