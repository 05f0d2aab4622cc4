"""ViGGO loaders: the CSV layout, alpaca JSONL, and clear errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from viggo.dataset import ViggoExample, load_examples, to_alpaca
from viggo.prompt import SYSTEM_INSTRUCTION


def test_load_csv_folder_and_file(viggo_data: Path) -> None:
    valid = load_examples(viggo_data)
    assert len(valid) == 714
    assert all(isinstance(example, ViggoExample) for example in valid)
    assert valid[0].mr.endswith(")") and valid[0].sentence
    assert len(load_examples(viggo_data / "train.csv")) == 5103
    assert len(load_examples(str(viggo_data), split="train")) == 5103


def test_load_alpaca_jsonl(tmp_path: Path) -> None:
    examples = [
        ViggoExample("Halo is a good shooter.", "inform(name[Halo], rating[good], genres[shooter])"),
        ViggoExample("Do you like Mac games?", "request_attribute(has_mac_release[])"),
    ]
    records = to_alpaca(examples)
    assert records[0] == {
        "instruction": SYSTEM_INSTRUCTION,
        "input": "Halo is a good shooter.",
        "output": "inform(name[Halo], rating[good], genres[shooter])",
    }
    path = tmp_path / "valid.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in records) + "\n\n")
    assert load_examples(path) == examples
    assert load_examples(tmp_path, split="valid") == examples


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_examples(tmp_path, split="test")
    with pytest.raises(FileNotFoundError):
        load_examples(tmp_path / "nowhere.csv")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("meaning,sentence\nx,y\n")
    with pytest.raises(ValueError, match="mr"):
        load_examples(bad_csv)
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text(json.dumps({"instruction": "x", "text": "y"}) + "\n")
    with pytest.raises(ValueError, match="input"):
        load_examples(bad_jsonl)


def test_hub_needs_datasets_or_network() -> None:
    # Offline (or without `datasets`) the error says what is missing instead of a bare traceback.
    with pytest.raises(RuntimeError, match=r"datasets|network"):
        load_examples("GEM/viggo")
