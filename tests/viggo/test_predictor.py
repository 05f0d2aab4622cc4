"""ViggoPredictor against a scripted generator (no engine): constrained greedy decoding, few-shot choice, errors."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from serving.errors import RequestError
from serving.generation import LocalAdapters
from tests.fakes import Call, Completion, ScriptedGenerator
from viggo.grammar import MR_GRAMMAR, build_grammar, value_spans
from viggo.predictor import ViggoOutputError, ViggoPredictor
from viggo.prompt import FEW_SHOT_EXAMPLES
from viggo.protocol import ViggoPrediction

if TYPE_CHECKING:
    from vllm.lora.request import LoRARequest


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


class ServedBaseName(LocalAdapters):
    """As the service's registry resolves: the served model's own name is the base model, no adapter."""

    async def resolve(self, name: str | None) -> LoRARequest | None:
        return None if name == "SmolLM2-135M-Instruct" else await super().resolve(name)


def test_the_base_model_named_by_its_served_name_gets_the_few_shot_prompt(tmp_path: Path) -> None:
    fake = ScriptedGenerator(
        answers={"Halo is good.": Completion("inform(name[Halo], rating[good])")},
        adapters=ServedBaseName({"tuned": tmp_path}),
    )
    predictor = ViggoPredictor(fake)
    asyncio.run(predictor.predict("Halo is good.", adapter="SmolLM2-135M-Instruct"))
    asyncio.run(predictor.predict_many(["Halo is good."], adapter="SmolLM2-135M-Instruct", progress=False))
    asyncio.run(predictor.predict("Halo is good.", adapter="tuned"))
    assert [len(call.messages) for call in fake.calls] == [2 + 2 * len(FEW_SHOT_EXAMPLES)] * 2 + [2]


def test_a_prompt_longer_than_the_context_is_a_request_error_on_sentence() -> None:
    predictor = ViggoPredictor(ScriptedGenerator(max_model_len=64))
    with pytest.raises(RequestError) as error:
        asyncio.run(predictor.predict("Halo is good."))
    assert error.value.field == "sentence" and error.value.status == 400


def _grammar(call: Call) -> str | None:
    constraint = call.params.structured_outputs
    return constraint.grammar if constraint is not None else None


def test_span_values_always_constrain_each_request_to_its_own_sentence() -> None:
    fake = ScriptedGenerator(answers={"Halo is good.": Completion("inform(name[Halo], rating[good])")})
    prediction = asyncio.run(ViggoPredictor(fake, span_values="always").predict("Halo is good."))
    assert prediction.mr == "inform(name[Halo], rating[good])" and not prediction.redecoded
    assert [_grammar(call) for call in fake.calls] == [build_grammar(value_spans("Halo is good."))]
    assert _grammar(fake.calls[0]) != MR_GRAMMAR


def test_redecode_keeps_an_answer_from_the_sentence_and_decodes_again_only_an_invented_one() -> None:
    sentence = "Have you played Halo 3 on the Xbox?"
    spans = value_spans(sentence)
    fake = ScriptedGenerator(
        Completion("verify_attribute(name[halo 3], platforms[Xbox])"),  # another case: still the sentence's words
        Completion("verify_attribute(name[Halo 3: ODST], platforms[Xbox])"),  # not in the sentence
        Completion("verify_attribute(name[Halo 3], platforms[Xbox])"),  # the second decoding
    )
    predictor = ViggoPredictor(fake, span_values="redecode")

    kept = asyncio.run(predictor.predict(sentence))
    assert kept.mr == "verify_attribute(name[halo 3], platforms[Xbox])" and kept.grounded and not kept.redecoded
    assert [_grammar(call) for call in fake.calls] == [MR_GRAMMAR]

    fixed = asyncio.run(predictor.predict(sentence))
    assert fixed == ViggoPrediction(
        mr="verify_attribute(name[Halo 3], platforms[Xbox])",
        act="verify_attribute",
        attributes={"name": "Halo 3", "platforms": ["Xbox"]},
        grounded=False,  # the model's own answer invented a value: said even though the MR no longer has it
        ungrounded=["name"],
        redecoded=True,
    )
    assert [_grammar(call) for call in fake.calls[1:]] == [MR_GRAMMAR, build_grammar(spans)]
    assert fake.calls[1].messages == fake.calls[2].messages and fake.replies == []


def test_redecoding_that_is_cut_off_is_the_same_clear_error() -> None:
    fake = ScriptedGenerator(Completion("inform(name[Doom Eternal])"), Completion("inform(name[Do", "length"))
    with pytest.raises(ViggoOutputError, match="max_tokens"):
        asyncio.run(ViggoPredictor(fake, span_values="redecode").predict("Doom is fun."))
