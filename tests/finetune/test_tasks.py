"""finetune.tasks: NER labelling pairs come from the service's own candidates and prompt, labelled by the gold."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from finetune.tasks import labelling_target, load_pairs, ner_pairs
from ner.prompt import tuned_messages

TEXT = "Mary Barra of General Motors met officials of the Bank of England in Leeds on Monday."


def test_each_candidate_gets_its_gold_type_and_a_run_of_person_and_organization_is_none() -> None:
    target = labelling_target(TEXT, ["Mary Barra"], ["General Motors", "Bank of England"], ["Leeds"])
    assert target.labels == {
        "Mary Barra of General Motors": "none",
        "Mary Barra": "person",
        "General Motors": "organization",
        "Bank of England": "organization",
        "Bank": "none",
        "England": "none",
        "Leeds": "location",
    }
    # The gold lists "Bank of England" whole: what "England" alone would be, it does not say.
    assert target.unvouched == {"Bank", "England"}


def test_the_answer_is_the_decoders_json_with_the_unvouched_labels_masked() -> None:
    answer, masked = labelling_target(TEXT, ["Mary Barra"], ["General Motors", "Bank of England"], ["Leeds"]).answer()
    assert json.loads(answer)["Leeds"] == "location"
    assert [answer[start:end] for start, end in masked] == ["none", "none"]
    assert answer[masked[1][0] - len('"England": "') : masked[1][0]] == '"England": "'


def test_ner_pairs_read_a_folder_by_glob_and_use_the_tuned_prompt(tmp_path: Path) -> None:
    record = {
        "id": "t-1",
        "text": TEXT,
        "entities": {
            "persons": ["Mary Barra"],
            "organizations": ["General Motors", "Bank of England"],
            "locations": ["Leeds"],
            "dates": ["Monday"],
        },
    }
    (tmp_path / "train-1.jsonl").write_text(json.dumps(record) + "\n")
    empty = {"id": "t-2", "text": "nothing to see here.", "entities": {key: [] for key in record["entities"]}}
    (tmp_path / "train-2.jsonl").write_text(json.dumps(empty) + "\n")
    pairs = load_pairs("ner", tmp_path, "train-*")
    assert len(pairs) == 1  # a text without candidates teaches nothing
    names = list(json.loads(pairs[0].response))
    assert pairs[0].messages == tuned_messages(TEXT, names)


def test_a_bad_record_names_its_file_and_line(tmp_path: Path) -> None:
    path = tmp_path / "train.jsonl"
    path.write_text('{"id": "ok", "text": "Leeds.", "entities": {"persons": [], "organizations": [], '
                    '"locations": ["Leeds"], "dates": []}}\n{"id": "bad", "text": "x"}\n')  # fmt: skip
    with pytest.raises(ValueError, match=r"train.jsonl:2: not a gold NER record"):
        ner_pairs(path, "train")
    with pytest.raises(FileNotFoundError, match="no NER gold file"):
        ner_pairs(tmp_path, "valid")
