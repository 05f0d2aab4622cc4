"""Grounding: every entity found in the text by its spans; invented ones dropped and counted."""

from __future__ import annotations

from itertools import pairwise

import pytest
from prometheus_client import REGISTRY

from ner.evaluate import load_gold
from ner.grounding import ground, occurrences
from serving.paths import NER_DEV_SET


def dropped_count(kind: str) -> float:
    return REGISTRY.get_sample_value("ner_dropped_entities_total", {"type": kind}) or 0.0


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
    assert all(a_end <= b_start for (_, a_end), (b_start, _) in pairwise(spans))


def test_extraction_lists_follow_text_order() -> None:
    grounded = ground("Rome, then Oslo.", [("location", "Oslo"), ("location", "Rome")])
    assert grounded.extraction().locations == ["Rome", "Oslo"]


def test_dev_set_loads_and_its_entities_occur_in_their_texts() -> None:
    if not NER_DEV_SET.exists():
        pytest.skip(f"no dev set at {NER_DEV_SET}")
    for item in load_gold(NER_DEV_SET):
        for name in ("persons", "organizations", "locations", "dates"):
            assert all(occurrences(item.text, entity) for entity in getattr(item.entities, name))
