"""Label confidence: the probability read from the constrained decoding's log-probabilities, and `min_score`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import pytest
from transformers import PreTrainedTokenizerBase

from ner.decoding import answer_json, label_scores, labelling_params
from ner.grounding import ground


@dataclass
class Logprob:
    logprob: float


def test_each_label_gets_the_probability_of_the_tokens_that_spell_it(tokenizer: PreTrainedTokenizerBase) -> None:
    # Non-ASCII keys split characters across tokens; the alignment must still find each label's tokens.
    output = answer_json({"Zürich": "location", "José Martínez": "person", "Čapek": "none", "Org": "organization"})
    ids = tokenizer.encode(output, add_special_tokens=False)

    def decode(piece: Sequence[int]) -> str:
        return str(tokenizer.decode(list(piece), skip_special_tokens=True, clean_up_tokenization_spaces=False))

    chosen = {"location": 0.8, "person": 0.6, "none": 0.9, "organization": 0.7}
    pieces = [decode([token]) for token in ids]
    assert set(chosen) <= set(pieces)  # each label is one token of this tokenizer
    # Tokens outside the labels get a probability that must not leak into any score.
    logprobs = [{token: Logprob(math.log(chosen.get(piece, 0.1)))} for token, piece in zip(ids, pieces, strict=True)]
    scores = label_scores(output, ids, logprobs, decode)
    assert scores == pytest.approx([0.8, 0.6, 0.9, 0.7])


def test_labelling_asks_for_the_chosen_tokens_logprob() -> None:
    assert labelling_params(["Tim Cook"], 32).logprobs == 0


def test_min_score_drops_low_scored_spans_and_their_list_entries() -> None:
    text = "Tim Cook met Jordan in Amman on 4 March 2019."
    scores = {"tim cook": 0.95, "jordan": 0.4, "amman": 0.7, "4 march 2019": 1.0}
    grounded = ground(
        text, [("person", "Tim Cook"), ("person", "Jordan"), ("location", "Amman"), ("date", "4 March 2019")], scores
    )
    assert [s.score for s in grounded.spans] == [0.95, 0.4, 0.7, 1.0]
    kept = grounded.above(0.5).extraction()
    assert kept.persons == ["Tim Cook"] and kept.locations == ["Amman"] and kept.dates == ["4 March 2019"]
    assert [s.text for s in kept.spans] == ["Tim Cook", "Amman", "4 March 2019"]
    assert grounded.above(None).extraction().persons == ["Tim Cook", "Jordan"]
