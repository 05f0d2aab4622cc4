"""MR grounding: invented open-slot values are flagged (and counted), corpus MRs are not."""

from __future__ import annotations

import asyncio
from pathlib import Path

from prometheus_client import REGISTRY

from tests.fakes import Completion, ScriptedGenerator
from viggo.dataset import load_examples
from viggo.grounding import ungrounded_attributes
from viggo.mr import MeaningRepresentation
from viggo.predictor import ViggoPredictor


def counted(attribute: str) -> float:
    return REGISTRY.get_sample_value("viggo_ungrounded_values_total", {"attribute": attribute}) or 0.0


def test_invented_values_are_flagged_in_mr_order_and_counted() -> None:
    mr = MeaningRepresentation.parse("inform(name[x], exp_release_date[2015], developer[X], rating[good])")
    before = counted("exp_release_date")
    assert ungrounded_attributes(mr, "x") == ["exp_release_date"]
    assert counted("exp_release_date") == before + 1


def test_spacing_case_and_punctuation_do_not_count_as_invention() -> None:
    mr = MeaningRepresentation.parse("request(specifier[fast-paced], name[Need for Speed: Payback])")
    sentence = "Have you played any fast paced games like need for speed:payback lately?"
    assert ungrounded_attributes(mr, sentence) == []


def test_closed_slots_are_not_checked() -> None:
    mr = MeaningRepresentation.parse("confirm(name[BioShock], esrb[M (for Mature)], platforms[PC])")
    assert ungrounded_attributes(mr, "Is that the M rated PC game BioShock?") == []


def test_corpus_mrs_are_grounded_but_for_the_known_three(viggo_data: Path) -> None:
    examples = [e for split in ("train", "valid") for e in load_examples(viggo_data, split)]
    flagged = [e for e in examples if ungrounded_attributes(MeaningRepresentation.parse(e.mr), e.sentence)]
    # '09 for 2009, "NFS: Payback" after the full name, and one more abbreviation in train.
    assert len(flagged) <= 3, [(e.sentence, e.mr) for e in flagged]


def test_prediction_reports_grounding() -> None:
    fake = ScriptedGenerator(
        answers={
            "x": Completion("inform(name[x], exp_release_date[2015], developer[X])"),
            "Halo is good.": Completion("inform(name[Halo], rating[good])"),
        }
    )
    predictor = ViggoPredictor(fake, max_tokens=64)
    invented = asyncio.run(predictor.predict("x"))
    assert not invented.grounded and invented.ungrounded == ["exp_release_date"]
    fine = asyncio.run(predictor.predict("Halo is good."))
    assert fine.grounded and fine.ungrounded == []
