"""Scoring of the NER evaluation (exact entity strings, case-insensitive)."""

from __future__ import annotations

import pytest

from ner.evaluate import GoldItem, Prediction, Report
from ner.schema import Entities


def test_report_scores_case_insensitive_exact_strings() -> None:
    report = Report()
    gold = GoldItem("1", "t", Entities(persons=["Tim Cook"], locations=["Austin"], dates=["2019"]))
    report.add(gold, Prediction(Entities(persons=["tim cook"], locations=["Texas"], dates=["2019"]), dropped=2))
    report.add(GoldItem("2", "t", Entities(persons=["Ada"])), Prediction(None, error="HTTP 500"))
    summary = report.summary()
    assert summary["per_type"]["persons"] == pytest.approx(
        {"precision": 1.0, "recall": 0.5, "f1": 2 / 3, "tp": 1, "fp": 0, "fn": 1}
    )
    assert summary["micro"]["tp"] == 2 and summary["micro"]["fp"] == 1 and summary["micro"]["fn"] == 2
    assert summary["schema_valid_rate"] == 0.5 and summary["dropped"] == 2
    assert summary["errors"] == [{"id": "2", "error": "HTTP 500"}]
