"""EntityExtractor against a scripted generator (no engine): labelling, retries on a cut answer, input checks."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest

from ner.decoding import answer_json
from ner.extractor import EntityExtractor, ExtractionError
from ner.prompt import labelling_messages, tuned_messages
from ner.schema import Entities, Extraction
from serving.errors import RequestError
from serving.generation import LocalAdapters
from tests.fakes import Completion, ScriptedGenerator


def _extract(
    generator: ScriptedGenerator, text: str, *, max_text_chars: int = 500, max_tokens: int = 256
) -> Extraction:
    extractor = EntityExtractor(generator, max_text_chars=max_text_chars, max_tokens=max_tokens)
    return asyncio.run(extractor.extract(text))


def test_extract_labels_candidates_and_adds_dates() -> None:
    text = "Tim Cook said Apple opened an office in Austin on 4 March 2019."
    answer = answer_json({"Tim Cook": "person", "Apple": "organization", "Austin": "location"})
    extraction = _extract(ScriptedGenerator(Completion(answer)), text)
    assert extraction.entities() == Entities(
        persons=["Tim Cook"], organizations=["Apple"], locations=["Austin"], dates=["4 March 2019"]
    )
    assert extraction.dropped == 0 and extraction.retries == 0
    assert all(text[s.start : s.end] == s.text for s in extraction.spans)


def test_extract_without_names_needs_no_generation() -> None:
    generator = ScriptedGenerator()
    extraction = _extract(generator, "see you on Friday")
    assert extraction.dates == ["Friday"] and extraction.finish is None
    assert generator.budgets() == []


def test_a_cut_generation_is_retried_with_a_larger_budget() -> None:
    answer = answer_json({"Tim Cook": "person"})
    generator = ScriptedGenerator(Completion(answer[:5], "length"), Completion(answer))
    extraction = _extract(generator, "Tim Cook spoke.", max_tokens=8)
    longest = len(answer_json({"Tim Cook": "organization"})) + 8  # the scripted generator: a token per character
    assert generator.budgets() == [longest, 2 * longest]
    assert extraction.persons == ["Tim Cook"] and extraction.retries == 1


def test_a_generation_cut_at_the_context_limit_is_an_error_not_a_partial_result() -> None:
    text = "Tim Cook spoke."
    generator = ScriptedGenerator(*[Completion('{"Tim', "length")] * 10)
    generator.max_model_len = len(generator.encode(generator.chat_text(labelling_messages(text, ["Tim Cook"])))) + 50
    with pytest.raises(ExtractionError, match="did not fit"):
        _extract(generator, text, max_tokens=8)
    assert generator.budgets() == [36, 50]  # the longest possible answer (36), then all the context leaves


@pytest.mark.parametrize("text", ["", "   \n\t"])
def test_empty_text_is_a_request_error_on_text(text: str) -> None:
    with pytest.raises(RequestError) as error:
        _extract(ScriptedGenerator(), text)
    assert error.value.field == "text" and 400 <= error.value.status < 500


def test_too_long_text_is_a_413_on_text() -> None:
    with pytest.raises(RequestError) as error:
        _extract(ScriptedGenerator(), "word " * 200, max_text_chars=100)
    assert error.value.field == "text" and error.value.status == 413


def test_a_prompt_longer_than_the_context_is_a_413_on_text() -> None:
    with pytest.raises(RequestError) as error:
        _extract(ScriptedGenerator(max_model_len=64), "Tim Cook spoke.")
    assert error.value.field == "text" and error.value.status == 413


def test_a_labelling_adapter_is_the_default_and_is_asked_with_its_own_prompt(tmp_path: Path) -> None:
    text = "Tim Cook spoke in Austin."
    answer = Completion(answer_json({"Tim Cook": "person", "Austin": "location"}))
    adapters = LocalAdapters({"ner": tmp_path / "ner", "other": tmp_path / "other"})
    generator = ScriptedGenerator(answer, answer, answer, adapters=adapters)
    extractor = EntityExtractor(generator, max_text_chars=500, labelling_adapter="ner")
    asyncio.run(extractor.extract(text))  # no adapter named: the tuned one, with the prompt it was trained on
    asyncio.run(extractor.extract(text, adapter="ner"))
    asyncio.run(extractor.extract(text, adapter="other"))  # any other adapter: the few-shot prompt
    names = ["Tim Cook", "Austin"]
    assert [(call.adapter, call.messages) for call in generator.calls] == [
        ("ner", tuned_messages(text, names)),
        ("ner", tuned_messages(text, names)),
        ("other", labelling_messages(text, names)),
    ]
