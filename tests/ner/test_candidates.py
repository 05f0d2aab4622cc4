"""Candidate spans proposed without the model: capitalised runs and date expressions."""

from __future__ import annotations

from itertools import pairwise

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from ner.candidates import _TOKEN, _outside, _starts_sentence, propose, unique_texts
from ner.prompt import EXAMPLES
from ner.resolution import labelling_names


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
            ["1990s"],
        ),
        (
            "Reporters at Le Monde and De Beers staff met in La Paz.",
            ["Reporters", "Le Monde", "De Beers", "La Paz"],
            [],
        ),
        ("Please send the invoice by the end of the week.", [], []),
        ("In 2023, 8,000 people paid $2024 for an A350 seat.", [], ["2023"]),
        ("We may meet in May 2021 or in June.", [], ["May 2021", "June"]),
        ("Hydro-Québec will spend C$185 billion on 777X jets by spring 2027.", ["Hydro-Québec"], ["spring 2027"]),
    ],
)
def test_candidates(text: str, names: list[str], dates: list[str]) -> None:
    candidates = propose(text)
    assert unique_texts(candidates, "name") == names
    assert unique_texts(candidates, "date") == dates
    assert all(text[c.start : c.end] == c.text for c in candidates)
    assert all(a.end <= b.start for a, b in pairwise(candidates))


def test_few_shot_keys_are_what_the_proposer_finds() -> None:
    # The examples teach the exact format of a real request, so their candidates must be the proposer's.
    for text, labels in EXAMPLES:
        assert labelling_names(propose(text)) == list(labels)


# Texts made of what the two helpers look at: capitalised words, digits (dates), sentence ends and openers.
_PIECES = st.sampled_from(["Anna", "Berlin", "of", "the", "The", "12", "May", "2020", ".", "!", ":", "\n", " ", "\t",
                           '"', "“", "”", "(", ")", "[", "'", "’", ",", "é", "Zoë"])  # fmt: skip
_TEXTS = st.lists(_PIECES, max_size=60).map("".join)


@settings(deadline=None)  # microseconds of work; a busy CI machine must not turn a pause into a failure
@given(_TEXTS, st.data())
def test_tokens_outside_taken_spans_are_those_that_start_in_none(text: str, data: st.DataObject) -> None:
    """`_outside` walks tokens and spans once; it keeps exactly the tokens no span contains the start of."""
    cuts = sorted(data.draw(st.sets(st.integers(0, len(text)), max_size=8)))
    taken = [(a, b) for a, b in zip(cuts[::2], cuts[1::2], strict=False) if a < b]
    tokens = list(_TOKEN.finditer(text))
    expected = [m for m in tokens if not any(s <= m.start() < e for s, e in taken)]
    assert [m.span() for m in _outside(iter(tokens), taken)] == [m.span() for m in expected]


@settings(deadline=None)
@given(_TEXTS, st.data())
def test_starts_sentence_is_what_precedes_it_after_openers(text: str, data: st.DataObject) -> None:
    """The walk back gives what stripping the openers off the text before `start` gives, without the copy."""
    start = data.draw(st.integers(0, len(text)))
    before = text[:start].rstrip(" \t\"'“‘([”’)]")
    assert _starts_sentence(text, start) == (not before or before[-1] in ".!?:;\n")


@pytest.mark.parametrize("closed", ["met on 12 May 2020.” The", "met in 2020.) The", "met in Paris.’ The"])
def test_a_sentence_closed_by_a_quote_or_bracket_still_ends_there(closed: str) -> None:
    """ "The" after `.”` or `.)` starts a sentence, so it is not part of the name that follows."""
    assert [c.text for c in propose(f"{closed} Board of Siemens agreed.") if c.kind == "name"][-1] == "Board of Siemens"


def test_a_long_document_full_of_dates_keeps_every_candidate_of_its_sentences() -> None:
    """A 100,000-character document: proposal on the whole equals proposal sentence by sentence, shifted (the
    per-token look at every date span made this take ~0.75 s on the development CPU; now ~0.04 s)."""
    sentence = (
        "On 4 March 2019 Angela Merkel met The Hague's mayor. “The board of Siemens AG (Munich) met on 12 May 2020.” "
    )
    document = sentence * (100_000 // len(sentence))
    whole = propose(document)
    one = propose(sentence)
    assert len(whole) == len(one) * (len(document) // len(sentence))
    for k, candidate in enumerate(whole):
        reference = one[k % len(one)]
        shift = (k // len(one)) * len(sentence)
        assert (candidate.text, candidate.kind) == (reference.text, reference.kind)
        assert (candidate.start, candidate.end) == (reference.start + shift, reference.end + shift)
