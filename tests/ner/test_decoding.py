"""The per-request labelling schema (checked with xgrammar), its sampling parameters and the answer parser."""

from __future__ import annotations

import json

import pytest
import xgrammar
from xgrammar.testing import _is_grammar_accept_string

from ner.candidates import propose, unique_texts
from ner.decoding import answer_json, labelling_params, labelling_schema, parse_labels


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
    with pytest.raises(ValueError, match="do not match the candidates"):
        parse_labels(answer_json({"Tim Cook": "person"}), names)
