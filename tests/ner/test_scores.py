"""Label confidence: the probability read from the constrained decoding's log-probabilities, and `min_score`."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, cast

import pytest
from transformers import PreTrainedTokenizerBase

from ner.decoding import Label, answer_json, label_scores, labelling_params, token_ends
from ner.grounding import ground


@dataclass
class Logprob:
    logprob: float
    decoded_token: str | None = None  # what vLLM decoded for the chosen token; None where it left it out


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


@pytest.mark.parametrize(
    ("labels", "spelled"),
    [
        ({"Tim Cook": "person", "Apple": "organization", "Cupertino": "location", "March": "none"}, True),
        ({"Zürich": "location", "José Martínez": "person", "Čapek": "none", "北京": "location"}, False),
    ],
    ids=["ascii", "split-characters"],
)
def test_scores_from_vllms_decoded_tokens_match_decoding(
    tokenizer: PreTrainedTokenizerBase, labels: dict[str, Label], spelled: bool
) -> None:
    # vLLM decodes each chosen token for its log-probability; where those texts spell the answer they align the
    # tokens without decoding again, and a character split across tokens (U+FFFD pieces) falls back to decoding.
    from vllm.tokenizers.detokenizer_utils import convert_ids_list_to_tokens

    output = answer_json(labels)
    ids = [*tokenizer.encode(output, add_special_tokens=False), tokenizer.eos_token_id]  # the stop token last

    def decode(piece: Sequence[int]) -> str:
        return str(tokenizer.decode(list(piece), skip_special_tokens=True, clean_up_tokenization_spaces=False))

    pieces = convert_ids_list_to_tokens(cast("Any", tokenizer), ids)
    logprobs = [
        {token: Logprob(-0.01 * (k % 7 + 1), piece)} for k, (token, piece) in enumerate(zip(ids, pieces, strict=True))
    ]
    bare = [{token: Logprob(chosen[token].logprob)} for token, chosen in zip(ids, logprobs, strict=True)]
    assert (token_ends(output, ids, logprobs) is not None) is spelled
    scores = label_scores(output, ids, logprobs, decode)
    assert scores == label_scores(output, ids, bare, decode)  # bare: decoding only
    assert all(score is not None and 0 < score < 1 for score in scores) and len(scores) == len(labels)


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
