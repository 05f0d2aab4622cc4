"""Candidate spans proposed without the model: capitalised runs and date expressions."""

from __future__ import annotations

from itertools import pairwise

import pytest

from ner.candidates import propose, unique_texts
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
