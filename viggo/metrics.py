"""Scores of predicted MRs against reference MRs."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass

from viggo.mr import MeaningRepresentation, MRParseError


@dataclass(frozen=True)
class ViggoScores:
    count: int
    exact_match: float  # the predicted MR string equals the reference string, slot order included
    act_accuracy: float
    slot_precision: float
    slot_recall: float
    slot_f1: float
    parse_rate: float  # share of predictions that are well-formed MRs

    def as_dict(self) -> dict[str, float | int]:
        return asdict(self)


def score_by_act(predictions: Sequence[str | None], references: Sequence[str]) -> dict[str, ViggoScores]:
    """`score` over the sentences of each reference act, in the order the acts first occur: where a model's
    exact-match misses concentrate (the 9 acts are far from equally frequent)."""
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    groups: dict[str, tuple[list[str | None], list[str]]] = {}
    for prediction, reference in zip(predictions, references, strict=True):
        guesses, golds = groups.setdefault(MeaningRepresentation.parse(reference).act, ([], []))
        guesses.append(prediction)
        golds.append(reference)
    return {act: score(guesses, golds) for act, (guesses, golds) in groups.items()}


def score(predictions: Sequence[str | None], references: Sequence[str]) -> ViggoScores:
    """`None` stands for a prediction that failed outright; it counts as unparseable.

    Slots are (attribute, value) pairs with list values split into items, micro-averaged over the
    whole set; an unparseable prediction predicts no slots and no act.
    """
    if len(predictions) != len(references):
        raise ValueError(f"{len(predictions)} predictions for {len(references)} references")
    exact = acts = parsed = true_positives = predicted_slots = reference_slots = 0
    for prediction, reference in zip(predictions, references, strict=True):
        gold = MeaningRepresentation.parse(reference)
        reference_slots += len(gold.slots())
        if prediction is None:
            continue
        exact += prediction == reference
        try:
            guess = MeaningRepresentation.parse(prediction)
        except MRParseError:
            continue
        parsed += 1
        acts += guess.act == gold.act
        predicted_slots += len(guess.slots())
        true_positives += len(guess.slots() & gold.slots())
    count = len(references)
    precision = _ratio(true_positives, predicted_slots)
    recall = _ratio(true_positives, reference_slots)
    f1 = _ratio(2 * precision * recall, precision + recall)
    return ViggoScores(
        count=count,
        exact_match=_ratio(exact, count),
        act_accuracy=_ratio(acts, count),
        slot_precision=precision,
        slot_recall=recall,
        slot_f1=f1,
        parse_rate=_ratio(parsed, count),
    )


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0
