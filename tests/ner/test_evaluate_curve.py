"""The evaluation CLI's precision/recall curve over `min_score`, and its plot."""

from __future__ import annotations

from pathlib import Path

from ner.evaluate import GoldItem, Prediction, Report, plot_curve
from ner.schema import Entities, EntitySpan, EntityType


def _span(kind: EntityType, text: str, score: float | None) -> EntitySpan:
    return EntitySpan(type=kind, text=text, start=0, end=len(text), score=score)


def test_curve_keeps_entities_scored_at_or_above_each_threshold(tmp_path: Path) -> None:
    report = Report()
    gold = GoldItem("1", "t", Entities(persons=["Tim Cook"], locations=["Austin"]))
    found = Entities(persons=["Tim Cook", "Apple"], locations=["Austin"])
    spans = [_span("person", "Tim Cook", 0.9), _span("person", "Apple", 0.4), _span("location", "Austin", 0.6)]
    report.add(gold, Prediction(found, spans=spans))
    report.add(GoldItem("2", "t", Entities(dates=["2019"])), Prediction(Entities(dates=["2019"])))  # no score: kept

    points = {p["threshold"]: p for p in report.curve([0.0, 0.5, 0.7, 0.95])}
    assert (points[0.0]["tp"], points[0.0]["fp"], points[0.0]["fn"]) == (3, 1, 0)
    assert (points[0.5]["tp"], points[0.5]["fp"], points[0.5]["fn"]) == (3, 0, 0)
    assert (points[0.7]["tp"], points[0.7]["fp"], points[0.7]["fn"]) == (2, 0, 1)
    assert (points[0.95]["tp"], points[0.95]["fp"], points[0.95]["fn"]) == (1, 0, 2)
    summary = report.summary()
    assert summary["micro"]["fp"] == 1 and summary["curve"][0]["threshold"] == 0.0

    summary["fine_curve"] = report.curve([i / 100 for i in range(101)])
    plot = tmp_path / "curve.png"
    plot_curve({"dev": summary, "other": summary}, plot, "test")
    assert plot.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
