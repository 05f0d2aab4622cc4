"""ViGGO scores: exact match, act accuracy, slot precision/recall/F1, parse rate."""

from __future__ import annotations

import pytest

from viggo.metrics import score, score_by_act


def test_metrics_hand_made() -> None:
    references = [
        "inform(name[Halo], genres[shooter, action], rating[good])",
        "request(specifier[scary])",
        "confirm(name[Doom], platforms[PC])",
        "request_attribute(esrb[])",
    ]
    predictions = [
        "inform(name[Halo], genres[shooter, action], rating[good])",  # exact: 4 slots right
        "request(specifier[fun])",  # act right, 1 wrong slot
        "suggest(name[Doom], platforms[PC, Xbox])",  # act wrong, 2 of 3 slots right
        None,  # request failed: no parse, no slots
    ]
    scores = score(predictions, references)
    assert scores.count == 4
    assert scores.exact_match == pytest.approx(1 / 4)
    assert scores.act_accuracy == pytest.approx(2 / 4)
    assert scores.parse_rate == pytest.approx(3 / 4)
    # predicted slots 4 + 1 + 3 = 8, correct 4 + 0 + 2 = 6; reference slots 4 + 1 + 2 + 1 = 8
    assert scores.slot_precision == pytest.approx(6 / 8)
    assert scores.slot_recall == pytest.approx(6 / 8)
    assert scores.slot_f1 == pytest.approx(6 / 8)


def test_metrics_unparseable_and_order() -> None:
    references = ["inform(name[Halo], rating[good])", "inform(name[Halo], rating[good])"]
    scores = score(["inform(rating[good], name[Halo])", "garbage"], references)
    assert scores.exact_match == 0  # strict string equality: slot order matters
    assert scores.slot_recall == pytest.approx(2 / 4)
    assert scores.slot_precision == 1.0
    assert scores.parse_rate == 0.5
    with pytest.raises(ValueError, match="2 references"):
        score(["inform(name[Halo])"], references)


def test_metrics_empty() -> None:
    assert score([], []).exact_match == 0.0


def test_scores_by_reference_act() -> None:
    references = ["inform(name[Halo])", "request(specifier[scary])", "inform(name[Doom])"]
    predictions = ["inform(name[Halo])", "inform(specifier[scary])", None]
    by_act = score_by_act(predictions, references)
    assert list(by_act) == ["inform", "request"]
    assert by_act["inform"].count == 2 and by_act["inform"].exact_match == pytest.approx(1 / 2)
    assert by_act["request"].act_accuracy == 0 and by_act["request"].slot_f1 == 1.0
    with pytest.raises(ValueError, match="3 references"):
        score_by_act(predictions[:2], references)
