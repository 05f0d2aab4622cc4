"""Whole documents without an engine: sentence split, packing to a token budget, and offsets after the merge.

The long documents are built from gold sentences (the held-out set, with its non-ASCII names); the scripted
generator answers each part with the gold label of each candidate, so every gold entity the proposer can find
must come back at every occurrence, at the right offsets in the original text.
"""

from __future__ import annotations

import asyncio
import json
import re
from collections.abc import Mapping, Sequence
from itertools import pairwise
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from ner.candidates import propose
from ner.decoding import answer_json
from ner.documents import Part, halves, pack, sentences
from ner.evaluate import GoldItem, load_gold
from ner.extractor import EntityExtractor
from ner.prompt import request_text
from ner.resolution import labelling_names
from ner.schema import ENTITY_FIELDS, Extraction
from serving.errors import RequestError
from serving.settings import ServiceSettings
from tests.fakes import Completion, ScriptedGenerator

if TYPE_CHECKING:
    from vllm import SamplingParams

HELD_OUT = Path(__file__).resolve().parents[2] / "ner" / "data" / "heldout.jsonl"
TYPE_OF_FIELD = {name: kind for kind, name in ENTITY_FIELDS.items()}


def test_sentences_keep_abbreviations_and_initials_and_cover_the_text() -> None:
    text = (
        "Dr. Jane Goodall met J. K. Rowling in St. Louis. It rained!  Then Zürich\n"
        'voted "yes." Ölund, a town, agreed? 3 people left.'
    )
    found = [part.of(text) for part in sentences(text)]
    assert found == [
        "Dr. Jane Goodall met J. K. Rowling in St. Louis.",
        "It rained!",
        "Then Zürich",
        'voted "yes."',
        "Ölund, a town, agreed?",
        "3 people left.",
    ]
    assert re.sub(r"\s", "", "".join(found)) == re.sub(r"\s", "", text)


def test_pack_joins_sentences_within_the_budget_and_cuts_a_longer_one() -> None:
    text = "One two three. Four five six. Seven eight nine. " + " ".join(f"w{i}" for i in range(30)) + ". End."
    parts = pack(text, lambda piece: len(piece.split()), budget=7)
    words = [len(part.of(text).split()) for part in parts]
    assert all(count <= 7 for count in words)
    assert parts[0].of(text) == "One two three. Four five six."
    assert re.sub(r"\s", "", "".join(p.of(text) for p in parts)) == re.sub(r"\s", "", text)
    assert all(a.end <= b.start for a, b in pairwise(parts))


def test_halves_cut_at_a_sentence_boundary_else_at_a_space() -> None:
    text = "Alpha beta. Gamma delta. Epsilon."
    first, second = halves(text, Part(0, len(text)))
    assert (first.of(text), second.of(text)) == ("Alpha beta.", "Gamma delta. Epsilon.")
    assert [p.of(text) for p in halves(text, Part(0, 10))] == ["Alpha", "beta"]
    assert halves("Word", Part(0, 4)) == [Part(0, 4)]


def _gold_labels(items: Sequence[GoldItem]) -> dict[str, str]:
    return {
        entity: TYPE_OF_FIELD[name]
        for item in items
        for name in ("persons", "organizations", "locations")
        for entity in getattr(item.entities, name)
    }


class GoldAnswers(dict[str, Completion]):
    """The scripted answers for every part of `text`: each candidate's gold label, or "none"."""

    def __init__(self, extractor: EntityExtractor, text: str, labels: dict[str, str]) -> None:
        super().__init__()
        for part in extractor.parts(text):
            names = labelling_names(propose(part.of(text)))
            if names:
                answer = {name: labels.get(name, "none") for name in names}
                self[request_text(part.of(text), names)] = Completion(answer_json(answer))


def _document(items: Sequence[GoldItem], size: int) -> tuple[str, list[tuple[int, GoldItem]]]:
    """Gold sentences repeated into paragraphs until `size` characters; each sentence with its offset."""
    pieces: list[str] = []
    placed: list[tuple[int, GoldItem]] = []
    length, index = 0, 0
    while length < size:
        item = items[index % len(items)]
        separator = "\n\n" if index % 7 == 6 else " "
        placed.append((length, item))
        pieces.append(item.text + separator)
        length += len(item.text) + len(separator)
        index += 1
    return "".join(pieces), placed


def _expected_spans(placed: Sequence[tuple[int, GoldItem]]) -> set[tuple[str, int, int]]:
    """Every occurrence of every gold entity the proposer offers in its own sentence, in document offsets."""
    expected: set[tuple[str, int, int]] = set()
    for offset, item in placed:
        candidates = propose(item.text)
        offered = set(labelling_names(candidates)) | {c.text for c in candidates if c.kind == "date"}
        for name, kind in TYPE_OF_FIELD.items():
            for entity in getattr(item.entities, name):
                if entity in offered:
                    for match in re.finditer(rf"(?<!\w){re.escape(entity)}(?!\w)", item.text):
                        expected.add((kind, offset + match.start(), offset + match.end()))
    return expected


def _run(text: str, items: Sequence[GoldItem]) -> tuple[Extraction, ScriptedGenerator]:
    probe = EntityExtractor(ScriptedGenerator(), max_text_chars=len(text))
    generator = ScriptedGenerator(answers=GoldAnswers(probe, text, _gold_labels(items)))
    extractor = EntityExtractor(generator, max_text_chars=len(text))
    return asyncio.run(extractor.extract(text)), generator


@pytest.fixture(scope="module")
def held_out() -> list[GoldItem]:
    items = load_gold(HELD_OUT)
    assert any(not item.text.isascii() for item in items)
    return items


def test_a_100000_character_document_maps_every_span_back_to_the_original_text(held_out: list[GoldItem]) -> None:
    text, placed = _document(held_out, 100_000)
    assert len(text) >= 100_000 and not text.isascii()
    assert len(text) <= ServiceSettings().max_text_chars  # the default takes it
    extraction, generator = _run(text, held_out)

    assert len(generator.calls) > 100  # labelled in parts, each one prompt
    assert all(len(call.messages[-1]["content"]) < 2000 for call in generator.calls)
    for span in extraction.spans:
        assert text[span.start : span.end] == span.text
    assert all(a.end <= b.start for a, b in pairwise(extraction.spans))
    found = {(span.type, span.start, span.end) for span in extraction.spans}
    expected = _expected_spans(placed)
    assert expected <= found, sorted(expected - found)[:10]
    assert found <= expected, sorted(found - expected)[:10]
    assert "Zürich" in extraction.locations and "José Martínez" in extraction.persons


class ConcurrencyProbe(ScriptedGenerator):
    """Yields to the event loop inside every generation and records how many were in flight at once."""

    def __init__(self, answers: Mapping[str, Completion]) -> None:
        super().__init__(answers=answers)
        self.in_flight = 0
        self.most_in_flight = 0

    async def complete(
        self, prompt_ids: Sequence[int], params: SamplingParams, *, adapter: str | None = None
    ) -> Completion:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        await asyncio.sleep(0.01)
        self.in_flight -= 1
        return await super().complete(prompt_ids, params, adapter=adapter)


def test_parts_are_extracted_concurrently_and_smaller_parts_give_the_same_spans(held_out: list[GoldItem]) -> None:
    items = held_out[:20]
    text, placed = _document(items, 6_000)
    wide, _ = _run(text, items)
    probe = EntityExtractor(ScriptedGenerator(), max_text_chars=len(text), part_tokens=80)
    generator = ConcurrencyProbe(answers=GoldAnswers(probe, text, _gold_labels(items)))
    narrow = asyncio.run(EntityExtractor(generator, max_text_chars=len(text), part_tokens=80).extract(text))
    assert len(generator.calls) > 20 and generator.most_in_flight == len(generator.calls)
    assert [s.model_dump() for s in narrow.spans] == [s.model_dump() for s in wide.spans]
    assert {(s.type, s.start, s.end) for s in wide.spans} == _expected_spans(placed)


def test_a_string_gets_one_type_across_the_document() -> None:
    # Two parts call "Jordan" a person, a third calls it a location: every occurrence is a person.
    filler = "Filler words here. " * 4
    text = f"Jordan met Jordan Peele. {filler}Jordan spoke. {filler}Jordan rested in Amman."
    extractor = EntityExtractor(ScriptedGenerator(), max_text_chars=1000, part_tokens=60)
    parts = [p.of(text) for p in extractor.parts(text)]
    assert sum("Jordan" in part for part in parts) == 3
    answers: dict[str, Completion] = {}
    for part in parts:
        names = labelling_names(propose(part))
        if names:
            labels = {n: "person" if n.startswith("Jordan") else "location" if n == "Amman" else "none" for n in names}
            if "Amman" in part:
                labels["Jordan"] = "location"
            answers[request_text(part, names)] = Completion(answer_json(labels))
    generator = ScriptedGenerator(answers=answers)
    extraction = asyncio.run(EntityExtractor(generator, max_text_chars=1000, part_tokens=60).extract(text))
    jordans = [s for s in extraction.spans if s.text == "Jordan"]
    assert [text[s.start : s.start + 12] for s in jordans] == ["Jordan met J", "Jordan spoke", "Jordan reste"]
    assert {s.type for s in jordans} == {"person"}
    assert extraction.persons == ["Jordan", "Jordan Peele"] and extraction.locations == ["Amman"]


def test_a_surname_alone_may_be_a_person_named_in_full_in_another_part() -> None:
    filler = "Filler words here. " * 4
    text = f"Angela Merkel spoke. {filler}Merkel praised Shopify."
    probe = EntityExtractor(ScriptedGenerator(), max_text_chars=1000, part_tokens=40)
    generator = ScriptedGenerator(answers=GoldAnswers(probe, text, {}))  # every candidate "none"
    asyncio.run(EntityExtractor(generator, max_text_chars=1000, part_tokens=40).extract(text))
    (last,) = [call for call in generator.calls if "Shopify" in call.messages[-1]["content"]]
    assert "Angela Merkel" not in last.messages[-1]["content"]  # the full name is in another part
    assert last.params.structured_outputs is not None and isinstance(last.params.structured_outputs.json, dict)
    enums = {name: prop["enum"] for name, prop in last.params.structured_outputs.json["properties"].items()}
    assert enums == {
        "Merkel": ["person", "organization", "location", "none"],
        "Shopify": ["organization", "location", "none"],
    }


def test_a_single_word_that_cannot_fit_the_context_is_a_413() -> None:
    generator = ScriptedGenerator(max_model_len=1)
    with pytest.raises(RequestError) as error:
        asyncio.run(EntityExtractor(generator, max_text_chars=100).extract("Tim"))
    assert error.value.status == 413 and error.value.field == "text"


def test_held_out_set_is_well_formed() -> None:
    rows = [json.loads(line) for line in HELD_OUT.read_text(encoding="utf-8").splitlines() if line.strip()]
    assert len(rows) >= 60 and len({row["id"] for row in rows}) == len(rows)
    for row in rows:
        for entities in row["entities"].values():
            assert all(re.search(rf"(?<!\w){re.escape(e)}(?!\w)", row["text"]) for e in entities)
