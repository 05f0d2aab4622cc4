"""ViggoPredictor against a scripted generator (no engine): constrained greedy decoding, few-shot choice, errors."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from serving.errors import RequestError
from serving.generation import LocalAdapters
from tests.fakes import Completion, ScriptedGenerator
from viggo.grammar import MR_GRAMMAR, build_grammar, value_spans
from viggo.predictor import ViggoOutputError, ViggoPredictor
from viggo.prompt import FEW_SHOT_EXAMPLES
from viggo.protocol import ViggoPrediction


def test_predictor_constrained_greedy_and_few_shot_choice() -> None:
    fake = ScriptedGenerator(
        answers={
            "Halo is good.": Completion("inform(name[Halo], rating[good])"),
            "Cut off": Completion("inform(name[Ha", "length"),
        }
    )
    predictor = ViggoPredictor(fake, max_tokens=64)

    prediction = asyncio.run(predictor.predict("  Halo is good. "))
    assert prediction == ViggoPrediction(mr="inform(name[Halo], rating[good])", act="inform",
                                         attributes={"name": "Halo", "rating": "good"})  # fmt: skip
    call = fake.calls[-1]
    assert call.params.temperature == 0 and call.params.max_tokens == 64
    assert call.params.structured_outputs is not None and call.params.structured_outputs.grammar == MR_GRAMMAR
    assert len(call.messages) == 2 + 2 * len(FEW_SHOT_EXAMPLES) and call.adapter is None

    results = asyncio.run(predictor.predict_many(["Halo is good.", "Cut off"], progress=False, few_shot=False))
    assert isinstance(results[0], ViggoPrediction) and results[0].mr == "inform(name[Halo], rating[good])"
    assert isinstance(results[1], ViggoOutputError) and "max_tokens" in str(results[1])
    assert all(len(call.messages) == 2 for call in fake.calls[-2:])

    for sentence in ("", "   "):
        with pytest.raises(RequestError) as error:
            asyncio.run(predictor.predict(sentence))
        assert error.value.field == "sentence"
    with pytest.raises(RequestError) as error:  # no adapters: unknown adapter, before any generation
        asyncio.run(predictor.predict_many(["Halo is good."], adapter="tuned", progress=False))
    assert error.value.field == "adapter"


def test_predictor_skips_few_shot_for_an_adapter(tmp_path: Path) -> None:
    fake = ScriptedGenerator(
        answers={"Halo is good.": Completion("inform(name[Halo], rating[good])")},
        adapters=LocalAdapters({"tuned": tmp_path}),
    )
    predictor = ViggoPredictor(fake)
    asyncio.run(predictor.predict("Halo is good.", adapter="tuned"))
    call = fake.calls[-1]
    assert call.adapter == "tuned" and [m["role"] for m in call.messages] == ["system", "user"]
    asyncio.run(predictor.predict("Halo is good.", adapter="tuned", few_shot=True))
    assert len(fake.calls[-1].messages) == 2 + 2 * len(FEW_SHOT_EXAMPLES)


def test_a_prompt_longer_than_the_context_is_a_request_error_on_sentence() -> None:
    predictor = ViggoPredictor(ScriptedGenerator(max_model_len=64))
    with pytest.raises(RequestError) as error:
        asyncio.run(predictor.predict("Halo is good."))
    assert error.value.field == "sentence" and error.value.status == 400


def test_span_values_constrain_each_request_to_its_own_sentence() -> None:
    fake = ScriptedGenerator(answers={"Halo is good.": Completion("inform(name[Halo], rating[good])")})
    prediction = asyncio.run(ViggoPredictor(fake, span_values=True).predict("Halo is good."))
    assert prediction.mr == "inform(name[Halo], rating[good])"
    params = fake.calls[-1].params
    assert params.structured_outputs is not None
    assert params.structured_outputs.grammar == build_grammar(value_spans("Halo is good."))
    assert params.structured_outputs.grammar != MR_GRAMMAR
