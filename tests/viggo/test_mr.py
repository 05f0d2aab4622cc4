"""Meaning representations: parse and print back every corpus MR; malformed ones are refused."""

from __future__ import annotations

import pytest

from viggo.mr import MeaningRepresentation, MRParseError


def test_round_trip_every_corpus_mr(corpus_mrs: list[str]) -> None:
    assert len(corpus_mrs) == 5103 + 714
    failures = [mr for mr in corpus_mrs if MeaningRepresentation.parse(mr).to_string() != mr]
    assert failures == []


def test_parse_lists_and_awkward_values() -> None:
    text = (
        "inform(name[Dirt: Showdown], exp_release_date[December 1, 2018], developer[Spectrum HoloByte, Inc.], "
        "esrb[E 10+ (for Everyone 10 and Older)], genres[driving/racing, sport], platforms[PC])"
    )
    mr = MeaningRepresentation.parse(text)
    assert mr.act == "inform"
    assert list(mr.attributes) == ["name", "exp_release_date", "developer", "esrb", "genres", "platforms"]
    assert mr.attributes["genres"] == ["driving/racing", "sport"]
    assert mr.attributes["platforms"] == ["PC"]
    assert mr.attributes["developer"] == "Spectrum HoloByte, Inc."  # a comma, but not a list attribute
    assert mr.attributes["exp_release_date"] == "December 1, 2018"
    assert mr.to_string() == text
    assert mr.slots() == {
        ("name", "Dirt: Showdown"),
        ("exp_release_date", "December 1, 2018"),
        ("developer", "Spectrum HoloByte, Inc."),
        ("esrb", "E 10+ (for Everyone 10 and Older)"),
        ("genres", "driving/racing"),
        ("genres", "sport"),
        ("platforms", "PC"),
    }


def test_parse_empty_value_of_request_attribute() -> None:
    mr = MeaningRepresentation.parse("request_attribute(player_perspective[])")
    assert mr.attributes == {"player_perspective": ""}
    assert mr.to_string() == "request_attribute(player_perspective[])"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "inform",
        "inform()",
        "inform(name[Halo]",
        "greet(name[Halo])",
        "inform(title[Halo])",
        "inform(name[Halo], name[Halo 2])",
        "inform(name[Halo],rating[good])",
        "inform(name[Halo] rating[good])",
        "inform(name[Ha[lo]])",
        "inform(name[])",
        "inform(name[Halo]) trailing",
        " inform(name[Halo])",
    ],
)
def test_parse_rejects_malformed(text: str) -> None:
    with pytest.raises(MRParseError):
        MeaningRepresentation.parse(text)
