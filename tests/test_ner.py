"""Pure NER logic: grounding, candidates, the decoding schema, prompts, the extractor's checks, scoring.

No vLLM engine is started here; the extractor runs against a scripted generator.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass

import pytest
import xgrammar
from prometheus_client import REGISTRY
from xgrammar.testing import _is_grammar_accept_string

from ner.candidates import propose, unique_texts
from ner.decoding import answer_json, labelling_params, labelling_schema, parse_labels
from ner.evaluate import GoldItem, Prediction, Report, load_gold
from ner.extractor import EntityExtractor, ExtractionError
from ner.grounding import ground, occurrences
from ner.prompt import EXAMPLES, labelling_messages
from ner.schema import Entities
from serving import default_model
from serving.errors import RequestError
from serving.paths import NER_DEV_SET

MODEL_DIR = default_model.model_dir()
DEV = NER_DEV_SET


def dropped_count(kind: str) -> float:
    return REGISTRY.get_sample_value("ner_dropped_entities_total", {"type": kind}) or 0.0


# --- grounding -------------------------------------------------------------------------------


def test_exact_match_reports_every_occurrence() -> None:
    text = "Paris is big. I love Paris."
    grounded = ground(text, [("location", "Paris")])
    assert grounded.entities.locations == ["Paris"]
    assert [(s.start, s.end) for s in grounded.spans] == [(0, 5), (21, 26)]
    assert all(text[s.start : s.end] == s.text for s in grounded.spans)


def test_case_and_whitespace_insensitive_match_uses_the_input_spelling() -> None:
    text = "The  World Health\nOrganization met in paris."
    grounded = ground(text, [("organization", "world health organization"), ("location", "Paris")])
    assert grounded.entities.organizations == ["World Health\nOrganization"]
    assert grounded.entities.locations == ["paris"]
    assert grounded.dropped == 0
    assert all(text[s.start : s.end] == s.text for s in grounded.spans)


def test_exact_occurrences_win_over_loose_ones() -> None:
    assert occurrences("apple and Apple", "Apple") == [(10, 15)]


def test_matches_are_word_bounded() -> None:
    assert occurrences("Pineapple is not a company.", "Apple") == []
    assert occurrences("Kenya's runner", "Kenya") == [(0, 5)]


def test_invented_entities_are_dropped_and_counted() -> None:
    before_person, before_org = dropped_count("person"), dropped_count("organization")
    grounded = ground("Tim Cook spoke.", [("person", "Tim Cook"), ("person", "Steve Jobs"), ("organization", "Apple")])
    assert grounded.entities.persons == ["Tim Cook"]
    assert grounded.entities.organizations == []
    assert grounded.dropped == 2
    assert dropped_count("person") == before_person + 1
    assert dropped_count("organization") == before_org + 1


def test_duplicates_are_merged() -> None:
    grounded = ground("Berlin and berlin.", [("location", "Berlin"), ("location", "BERLIN"), ("location", "Berlin")])
    assert grounded.entities.locations == ["Berlin"]
    assert grounded.dropped == 0
    # An exact occurrence exists, so the lower-case "berlin" (maybe a different word) is not claimed.
    assert [(s.start, s.end) for s in grounded.spans] == [(0, 6)]


def test_a_span_gets_one_type_and_the_first_wins() -> None:
    grounded = ground("Amazon opened an office.", [("organization", "Amazon"), ("location", "Amazon")])
    assert grounded.entities.organizations == ["Amazon"]
    assert grounded.entities.locations == []
    assert [s.type for s in grounded.spans] == ["organization"]


def test_a_longer_entity_claims_its_text_first() -> None:
    text = "Paris Saint-Germain beat Lyon."
    grounded = ground(text, [("location", "Paris"), ("organization", "Paris Saint-Germain")])
    assert grounded.entities.organizations == ["Paris Saint-Germain"]
    assert grounded.entities.locations == []  # "Paris" only occurs inside the club's name
    spans = [(s.start, s.end) for s in grounded.spans]
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in zip(spans, spans[1:]))


def test_extraction_lists_follow_text_order() -> None:
    grounded = ground("Rome, then Oslo.", [("location", "Oslo"), ("location", "Rome")])
    assert grounded.extraction().locations == ["Rome", "Oslo"]


# --- candidates ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("text", "names", "dates"),
    [
        ("The World Health Organization met on March 11, 2020.", ["World Health Organization"], ["March 11, 2020"]),
        ("Shell moved from The Hague to London in January 2022.", ["Shell", "The Hague", "London"], ["January 2022"]),
        ("Kenya's Eliud Kipchoge won on 25 September 2022.", ["Kenya", "Eliud Kipchoge"], ["25 September 2022"]),
        (
            "Dr. Jane Goodall visited the University of Oxford on Friday.",
            ["Jane Goodall", "University of Oxford"],
            ["Friday"],
        ),
        (
            "President Emmanuel Macron met Johnson & Johnson in the 1990s.",
            ["Emmanuel Macron", "Johnson & Johnson"],
            ["the 1990s"],
        ),
        ("Please send the invoice by the end of the week.", [], []),
        ("In 2023, 8,000 people paid $2024 for an A350 seat.", [], ["2023"]),
        ("We may meet in May 2021 or in June.", [], ["May 2021", "June"]),
    ],
)
def test_candidates(text: str, names: list[str], dates: list[str]) -> None:
    candidates = propose(text)
    assert unique_texts(candidates, "name") == names
    assert unique_texts(candidates, "date") == dates
    assert all(text[c.start : c.end] == c.text for c in candidates)
    assert all(a.end <= b.start for a, b in zip(candidates, candidates[1:]))


def test_few_shot_keys_are_what_the_proposer_finds() -> None:
    # The examples teach the exact format of a real request, so their candidates must be the proposer's.
    for text, labels in EXAMPLES:
        assert unique_texts(propose(text), "name") == list(labels)


# --- decoding schema -------------------------------------------------------------------------


def test_labelling_schema_is_accepted_by_xgrammar_and_matches_few_shot_answers() -> None:
    names = unique_texts(propose('Tim Cook met "Big" Bob O\'Neil of Société Générale in Zürich.'), "name")
    assert len(names) >= 3
    schema = labelling_schema(names)
    grammar = xgrammar.Grammar.from_json_schema(json.dumps(schema), any_whitespace=False)
    answer = answer_json(dict.fromkeys(names, "none"))
    assert _is_grammar_accept_string(grammar, answer)
    assert not _is_grammar_accept_string(grammar, answer_json(dict.fromkeys(reversed(names), "none")))
    assert not _is_grammar_accept_string(grammar, answer_json({**dict.fromkeys(names, "none"), "Extra": "none"}))
    assert not _is_grammar_accept_string(grammar, answer.replace('"none"', '"date"', 1))


def test_labelling_params_constrain_with_the_schema() -> None:
    params = labelling_params(["Tim Cook"], 64)
    assert params.temperature == 0 and params.max_tokens == 64
    assert params.structured_outputs is not None
    assert params.structured_outputs.json == labelling_schema(["Tim Cook"])
    assert params.structured_outputs.disable_any_whitespace


def test_parse_labels_keeps_entities_in_candidate_order() -> None:
    names = ["Tim Cook", "Apple", "Monday Club"]
    output = answer_json({"Tim Cook": "person", "Apple": "organization", "Monday Club": "none"})
    assert parse_labels(output, names) == [("person", "Tim Cook"), ("organization", "Apple")]
    with pytest.raises(ValueError):
        parse_labels(answer_json({"Tim Cook": "person"}), names)


# --- prompt ----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def tokenizer():  # type: ignore[no-untyped-def]
    if not MODEL_DIR.exists():
        pytest.skip(f"the converted default model is not at {MODEL_DIR}")
    from transformers import AutoTokenizer

    return AutoTokenizer.from_pretrained(MODEL_DIR)


def _render(tokenizer, text: str) -> str:  # type: ignore[no-untyped-def]
    names = unique_texts(propose(text), "name")
    return tokenizer.apply_chat_template(labelling_messages(text, names), tokenize=False, add_generation_prompt=True)


def test_prompt_renders_with_the_chat_template_and_shares_its_prefix(tokenizer) -> None:  # type: ignore[no-untyped-def]
    first = _render(tokenizer, "Angela Merkel visited Siemens in Erlangen.")
    second = _render(tokenizer, "Tim Cook said Apple will open a campus in Austin.")
    assert first.rstrip().endswith("assistant")
    assert "Candidates: Angela Merkel | Siemens | Erlangen" in first

    # Everything up to the last user message is identical, in text and in tokens.
    prefix = first[: first.rindex("Text: Angela Merkel")]
    assert second.startswith(prefix)
    assert len(prefix) > 0.7 * len(first)
    prefix_ids = tokenizer.encode(prefix, add_special_tokens=False)
    assert tokenizer.encode(first, add_special_tokens=False)[: len(prefix_ids)] == prefix_ids
    assert tokenizer.encode(second, add_special_tokens=False)[: len(prefix_ids)] == prefix_ids


def test_prompt_messages_are_system_examples_then_request() -> None:
    messages = labelling_messages("Tim Cook spoke.", ["Tim Cook"])
    assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * len(EXAMPLES) + ["user"]
    assert messages[-1]["content"] == "Text: Tim Cook spoke.\nCandidates: Tim Cook"
    assert json.loads(messages[2]["content"]) == EXAMPLES[0][1]


# --- extractor (scripted generator, no engine) -----------------------------------------------


@dataclass
class Output:
    text: str
    finish_reason: str


class ScriptedGenerator:
    """Stands in for `Generator`: replies with the queued outputs and records each token budget."""

    def __init__(self, *outputs: Output, max_model_len: int = 2048) -> None:
        self.outputs = list(outputs)
        self.max_model_len = max_model_len
        self.budgets: list[int] = []

    def chat_text(self, messages: list[dict[str, str]]) -> str:
        return "\n".join(m["content"] for m in messages)

    def encode(self, text: str) -> list[int]:
        return [0] * (len(text) // 4)

    async def complete(self, prompt_ids: list[int], params, *, adapter: str | None = None) -> Output:  # type: ignore[no-untyped-def]
        self.budgets.append(params.max_tokens)
        return self.outputs.pop(0)


def _extract(generator: ScriptedGenerator, text: str, **kwargs: int) -> object:
    extractor = EntityExtractor(generator, max_text_chars=kwargs.pop("max_text_chars", 500), **kwargs)  # type: ignore[arg-type]
    return asyncio.run(extractor.extract(text))


def test_extract_labels_candidates_and_adds_dates() -> None:
    text = "Tim Cook said Apple opened an office in Austin on 4 March 2019."
    answer = answer_json({"Tim Cook": "person", "Apple": "organization", "Austin": "location"})
    extraction = _extract(ScriptedGenerator(Output(answer, "stop")), text)
    assert extraction.entities() == Entities(  # type: ignore[attr-defined]
        persons=["Tim Cook"], organizations=["Apple"], locations=["Austin"], dates=["4 March 2019"]
    )
    assert extraction.dropped == 0 and extraction.retries == 0  # type: ignore[attr-defined]
    assert all(text[s.start : s.end] == s.text for s in extraction.spans)  # type: ignore[attr-defined]


def test_extract_without_names_needs_no_generation() -> None:
    generator = ScriptedGenerator()
    extraction = _extract(generator, "see you on Friday")
    assert extraction.dates == ["Friday"] and extraction.finish is None  # type: ignore[attr-defined]
    assert generator.budgets == []


def test_a_cut_generation_is_retried_with_a_larger_budget() -> None:
    answer = answer_json({"Tim Cook": "person"})
    generator = ScriptedGenerator(Output(answer[:5], "length"), Output(answer, "stop"))
    extraction = _extract(generator, "Tim Cook spoke.", max_tokens=8)
    assert generator.budgets == [8, 16]
    assert extraction.persons == ["Tim Cook"] and extraction.retries == 1  # type: ignore[attr-defined]


def test_a_generation_cut_at_the_context_limit_is_an_error_not_a_partial_result() -> None:
    text = "Tim Cook spoke."
    generator = ScriptedGenerator(*[Output('{"Tim', "length")] * 10)
    generator.max_model_len = len(generator.encode(generator.chat_text(labelling_messages(text, ["Tim Cook"])))) + 50
    with pytest.raises(ExtractionError, match="did not fit"):
        _extract(generator, text, max_tokens=8)
    assert generator.budgets == [8, 16, 32, 50]


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


# --- scoring ---------------------------------------------------------------------------------


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


def test_dev_set_loads_and_its_entities_occur_in_their_texts() -> None:
    if not DEV.exists():
        pytest.skip(f"no dev set at {DEV}")
    for item in load_gold(DEV):
        for name in ("persons", "organizations", "locations", "dates"):
            assert all(occurrences(item.text, entity) for entity in getattr(item.entities, name))
