"""Overlapping proposals ("X of Y" runs and their sides) and the document-wide vote: the rules in ner.resolution."""

from __future__ import annotations

import asyncio

import pytest

from ner.candidates import LabelRules, alternatives, context_labels, head_labels, propose
from ner.decoding import Label, answer_json, labelling_params
from ner.extractor import EntityExtractor
from ner.gazetteer import is_known_organization, is_known_person, is_known_place, starts_with_given_name
from ner.resolution import Labelled, labelling_names, merge, resolve
from tests.fakes import Completion, ScriptedGenerator


def test_a_run_joined_by_of_is_offered_with_its_sides() -> None:
    text = "Mary Barra of General Motors met the Bank of England."
    assert labelling_names(propose(text)) == [
        "Mary Barra of General Motors", "Mary Barra", "General Motors", "Bank of England", "Bank", "England",
    ]  # fmt: skip
    run = propose(text)[0]
    left, right = alternatives(run)  # type: ignore[misc]
    assert (text[left.start : left.end], text[right.start : right.end]) == ("Mary Barra", "General Motors")
    assert alternatives(propose("Tim Cook spoke.")[0]) is None


@pytest.mark.parametrize(
    ("text", "labels", "expected"),
    [
        # A person of an organization or a place: the two sides, whatever the run's own label.
        ("Mary Barra of General Motors", {"Mary Barra of General Motors": "person", "Mary Barra": "person",
         "General Motors": "organization"}, {"Mary Barra": "person", "General Motors": "organization"}),
        ("Sadiq Khan of London", {"Sadiq Khan of London": "none", "Sadiq Khan": "person", "London": "location"},
         {"Sadiq Khan": "person", "London": "location"}),
        # A run labelled an entity stays one entity.
        ("Bank of England", {"Bank of England": "organization", "Bank": "none", "England": "location"},
         {"Bank of England": "organization"}),
        # A run labelled none leaves its sides to their own labels.
        ("Residents of Lampedusa", {"Residents of Lampedusa": "none", "Residents": "none", "Lampedusa": "location"},
         {"Lampedusa": "location"}),
    ],
)  # fmt: skip
def test_resolve_x_of_y(text: str, labels: dict[str, Label], expected: dict[str, str]) -> None:
    decided = resolve(propose(text), {name: Labelled(label, 0.9) for name, label in labels.items()})
    assert {name: lab.label for name, lab in decided.items() if lab.label != "none"} == expected


def test_merge_votes_by_summed_probability_and_keeps_first_appearance_order() -> None:
    parts = [
        {"Jordan": Labelled("person", 0.6), "Amman": Labelled("location", 0.9)},
        {"jordan": Labelled("location", 0.9)},
        {"JORDAN": Labelled("person", 0.5), "Petra": Labelled("none", 0.8)},
    ]
    decided = merge(parts)
    assert [(d.type, d.surface) for d in decided] == [("person", "Jordan"), ("location", "Amman")]
    assert decided[0].score == pytest.approx(0.55)  # the mean probability of the winning label
    tie = merge([{"Rio": Labelled("location", 0.5)}, {"Rio": Labelled("none", 0.5)}])
    assert [(d.type, d.surface) for d in tie] == [("location", "Rio")]  # a tie goes to the first label seen


def test_a_lone_surname_is_the_person_its_full_name_was_decided() -> None:
    parts = [
        {"Kwame Mensah": Labelled("person", 0.9), "Mensah": Labelled("organization", 0.7)},
        {"MENSAH": Labelled("location", 0.6), "Huang": Labelled("location", 0.8), "Meloni": Labelled("none", 0.9)},
        {"Jensen Huang of Nvidia": Labelled("none", 0.5), "Mensah Group": Labelled("organization", 0.9)},
    ]
    decided = {d.surface: (d.type, d.score) for d in merge(parts)}
    assert decided["Mensah"] == ("person", 0.9)  # the full name's type and score, in every part
    assert decided["Huang"] == ("location", 0.8)  # no person "... Huang" was decided: the run was none
    assert "Meloni" not in decided and decided["Mensah Group"] == ("organization", 0.9)  # only lone words follow
    off = {d.surface: d.type for d in merge(parts, surname_persons=False)}
    assert off["Mensah"] == "organization"


def test_the_extractor_reports_both_sides_with_their_spans() -> None:
    text = "Angela Merkel met Tim Cook of Apple in Berlin."
    names = labelling_names(propose(text))
    assert names == ["Angela Merkel", "Tim Cook of Apple", "Tim Cook", "Apple", "Berlin"]
    answer = {"Angela Merkel": "person", "Tim Cook of Apple": "person", "Tim Cook": "person",
              "Apple": "organization", "Berlin": "location"}  # fmt: skip
    generator = ScriptedGenerator(Completion(answer_json(answer)))
    extraction = asyncio.run(EntityExtractor(generator, max_text_chars=500).extract(text))
    assert extraction.persons == ["Angela Merkel", "Tim Cook"]
    assert extraction.organizations == ["Apple"] and extraction.locations == ["Berlin"]
    assert [(s.text, s.start) for s in extraction.spans] == [
        ("Angela Merkel", 0), ("Tim Cook", 18), ("Apple", 30), ("Berlin", 39),
    ]  # fmt: skip


def test_context_narrows_the_labels_a_name_may_take() -> None:
    text = "Dr. Jane Goodall met Pope Francis in Vigo, near Kaub. Berlin hosted it in Berlin. He spoke in the Hague."
    allowed = context_labels(text, propose(text), LabelRules(lone_word_persons=False))
    assert allowed == {
        "Jane Goodall": ("person",),  # a given name first (ner.gazetteer), besides the title
        "Francis": ("person", "none"),
        "Vigo": ("location", "none"),
        "Kaub": ("location", "none"),
    }  # "Berlin" also starts a sentence, so it keeps every label
    params = labelling_params(["Vigo", "Berlin"], 32, allowed)
    assert params.structured_outputs is not None
    schema = params.structured_outputs.json
    assert isinstance(schema, dict)
    assert schema["properties"]["Vigo"]["enum"] == ["location", "none"]
    assert schema["properties"]["Berlin"]["enum"] == ["person", "organization", "location", "none"]


@pytest.mark.parametrize(
    ("name", "labels"),
    [
        ("Washington Post", ("organization", "none")),
        ("Times of India", ("organization", "none")),  # the head stands before "of"
        ("International Monetary Fund", ("organization", "none")),
        ("University College London", ("organization", "none")),  # a leading designator
        ("Bank of England", ("organization", "none")),  # a bank named after its place
        ("West Bank", ("organization", "location", "none")),
        ("Hudson River", ("location", "none")),
        ("Mount Kenya", ("location", "none")),
        ("Times Square", ("location", "none")),
        ("Nobel Prize", ("none",)),
        ("Dubai Airshow", ("none",)),  # trade shows and fringe festivals are events too
        ("Edinburgh Festival Fringe", ("none",)),
        ("Hurricane Ian", ("none",)),
        ("Michael Bay", None),  # surnames that are also place words are not heads
        ("Park Chan-wook", None),
        ("Police", None),  # one word says nothing: "Police said ..." starts many sentences
        ("Tim Cook of Apple", None),
    ],
)
def test_a_names_head_word_narrows_its_labels(name: str, labels: tuple[str, ...] | None) -> None:
    assert head_labels(name) == labels


def test_head_words_narrow_the_sides_of_a_run_and_win_over_the_word_before() -> None:
    text = "Mary Barra of General Motors spoke in Wall Street Journal interviews. The Times of India agreed."
    allowed = context_labels(text, propose(text))
    # An organization's head word decides (the model called "Wall Street Journal" and the like "none").
    assert allowed["General Motors"] == ("organization",)  # a side of "Mary Barra of General Motors"
    assert allowed["Wall Street Journal"] == ("organization",)  # not ("location", "none") after "in"
    assert allowed["Times of India"] == ("organization",)
    assert allowed["Mary Barra"] == ("person",)  # a given name (ner.gazetteer), as a side too
    assert allowed["India"] == ("location",)  # a country (ner.gazetteer), as a side too
    leaving_none = context_labels(text, propose(text), LabelRules(organization_heads_decide=False))
    assert leaving_none["Wall Street Journal"] == leaving_none["Times of India"] == ("organization", "none")
    without = context_labels(
        text,
        propose(text),
        LabelRules(head_words=False, lone_word_persons=False, known_places=False, given_names=False),
    )
    assert without == {"Wall Street Journal": ("location", "none")}  # the word before only


def test_a_lone_word_is_a_person_only_after_a_title_or_as_a_longer_names_last_word() -> None:
    text = "Angela Merkel praised Klarna. Merkel met Pope Francis, and Shares rose."
    allowed = context_labels(text, propose(text))
    assert allowed["Klarna"] == ("organization", "location", "none")
    assert allowed["Shares"] == ("organization", "location", "none")
    assert allowed["Francis"] == ("person", "none")
    assert "Merkel" not in allowed and allowed["Angela Merkel"] == ("person",)  # a given name first
    assert "Klarna" not in context_labels(text, propose(text), LabelRules(lone_word_persons=False))


def test_countries_and_planets_are_locations_wherever_they_stand() -> None:
    text = "The International Monetary Fund lent Argentina $44 billion. NASA flew to the Moon with the United  States."
    allowed = context_labels(text, propose(text))
    assert allowed["Argentina"] == allowed["Moon"] == ("location",)
    assert allowed["United  States"] == ("location",)  # compared ignoring case and spacing
    assert allowed["International Monetary Fund"] == ("organization",)
    off = context_labels(text, propose(text), LabelRules(known_places=False))
    assert off["Argentina"] == off["Moon"] == ("organization", "location", "none")  # the lone-word rule only
    assert not is_known_place("Jordan") and not is_known_place("Georgia")  # as often people


def test_a_word_after_from_or_a_name_after_mayor_of_is_a_place() -> None:
    text = (
        "Kim Ji-woo, a nurse from Busan, met the mayor of Le Havre and residents of the Sahel. "
        "A statement from Bain Capital followed. Sales from Monday fell."
    )
    allowed = context_labels(text, propose(text))
    assert allowed["Busan"] == ("location", "none")
    assert allowed["Le Havre"] == ("location", "none")
    assert allowed["Sahel"] == ("location", "none")
    assert "Bain Capital" not in allowed  # several words after "from": a company as often as a place
    off = context_labels(text, propose(text), LabelRules(place_phrases=False))
    assert "Le Havre" not in off and off["Busan"] == ("organization", "location", "none")


@pytest.mark.parametrize("name", ["Analytical Engine", "Hubble Space Telescope", "Clean Air Act", "Paris Agreement"])
def test_machines_laws_and_treaties_are_no_entity(name: str) -> None:
    assert head_labels(name) == ("none",)
    assert head_labels(name, works=False) is None


def test_the_subject_of_a_reporting_verb_is_a_person_or_an_organization() -> None:
    text = "Klarna said prices would rise. Agnès Pannier-Runacher told reporters in Paris. France said no."
    allowed = context_labels(text, propose(text))
    assert allowed["Agnès Pannier-Runacher"] == ("person", "organization")
    assert allowed["Klarna"] == ("organization",)  # a lone word is no person (lone_word_persons)
    assert allowed["France"] == ("location",)  # a country stays a place
    off = context_labels(text, propose(text), LabelRules(speakers=False))
    assert "Agnès Pannier-Runacher" not in off and off["Klarna"] == ("organization", "location", "none")


def test_a_person_of_an_organization_who_speaks_may_still_split() -> None:
    text = "Maria Silva of Petrobras said output rose."
    assert "Maria Silva of Petrobras" not in context_labels(text, propose(text))


def test_a_name_that_starts_with_a_given_name_is_a_person() -> None:
    text = (
        "Satya Nadella of Microsoft met Søren Lindqvist and Chloé Lefèvre at the George Washington University. "
        "Jordan Peterson and Keir Starmer spoke."
    )
    allowed = context_labels(text, propose(text))
    assert allowed["Satya Nadella"] == allowed["Søren Lindqvist"] == allowed["Chloé Lefèvre"] == ("person",)
    assert allowed["Keir Starmer"] == ("person",)
    assert "Satya Nadella of Microsoft" not in allowed  # a run with "of" is left to the model and resolution
    assert allowed["George Washington University"] == ("organization",)  # the head word decides first
    assert "Jordan Peterson" not in allowed  # Jordan is as often a country: not in the list
    off = context_labels(text, propose(text), LabelRules(given_names=False))
    assert "Satya Nadella" not in off and "Keir Starmer" not in off
    assert not starts_with_given_name("Angela") and not starts_with_given_name("Mary of Teck")


def test_known_companies_outlets_and_bodies_are_organizations() -> None:
    text = "Sales at Netflix rose. The BBC and Al  Jazeera reported from the Amazon, where Shell drills."
    allowed = context_labels(text, propose(text))
    assert allowed["Netflix"] == allowed["BBC"] == allowed["Al  Jazeera"] == allowed["Shell"] == ("organization",)
    assert allowed["Amazon"] == ("organization", "location", "none")  # a river as often: left to the model
    assert not is_known_organization("Amazon") and not is_known_organization("Target")
    off = context_labels(text, propose(text), LabelRules(known_organizations=False))
    assert off["Netflix"] == off["BBC"] == ("organization", "location", "none")  # the lone-word rule only
    assert off["Al  Jazeera"] == ("person", "organization")  # the subject of "reported"


def test_people_known_by_one_name_are_persons() -> None:
    text = "Pelé scored twice. Fans cheered Beyoncé in Cardiff, and Prince Harry waved."
    allowed = context_labels(text, propose(text))
    assert allowed["Pelé"] == allowed["Beyoncé"] == ("person",)
    assert is_known_person("ADELE") and not is_known_person("Prince") and not is_known_person("Marta")
    off = context_labels(text, propose(text), LabelRules(known_persons=False))
    assert off["Pelé"] == off["Beyoncé"] == ("organization", "location", "none")  # the lone-word rule only


def test_place_heads_decide_and_a_bank_of_a_place_is_an_organization() -> None:
    text = "Protesters filled Syntagma Square near Lake Titicaca. The Reserve Bank of Australia and the West Bank."
    allowed = context_labels(text, propose(text))
    assert allowed["Syntagma Square"] == allowed["Lake Titicaca"] == ("location",)
    assert allowed["Reserve Bank of Australia"] == ("organization",)  # organization heads decide too
    assert allowed["West Bank"] == ("organization", "location", "none")
    off = context_labels(text, propose(text), LabelRules(location_heads_decide=False))
    assert off["Syntagma Square"] == ("location", "none")


def test_nationality_adjectives_are_no_entity_but_names_that_start_with_one_are_left_alone() -> None:
    text = "Leeds signed the Ghanaian winger, and Turkish Airlines flew Dutch fans to Chinese cities."
    allowed = context_labels(text, propose(text))
    assert allowed["Ghanaian"] == allowed["Dutch"] == allowed["Chinese"] == ("none",)
    assert "Turkish Airlines" not in allowed or allowed["Turkish Airlines"] != ("none",)
    assert "Ghanaian" not in context_labels(text, propose(text), LabelRules(demonyms=False, lone_word_persons=False))


def test_a_name_with_a_persons_appositive_is_a_person() -> None:
    text = (
        "Wojciech Zieliński, a 23-year-old striker for Legia, scored. Ama Boateng (born in Kumasi) spoke. "
        "Kongsberg Gruppen, a defence group, bid. Olena Kovalenko, the mayor, left."
    )
    allowed = context_labels(text, propose(text))
    assert allowed["Wojciech Zieliński"] == allowed["Ama Boateng"] == ("person",)
    assert "Kongsberg Gruppen" not in allowed  # a group is no person's role: left to the model
    assert allowed["Olena Kovalenko"] == ("person",)  # "the mayor": an office is a role too
    off = context_labels(text, propose(text), LabelRules(appositive_persons=False))
    assert "Wojciech Zieliński" not in off


def test_a_common_noun_that_starts_a_sentence_is_no_entity() -> None:
    text = (
        'Residents fled. "Thousands marched," said Critics Circle. Shares rose. Witnesses said so. '
        "Investors met Shares. Heavy rain fell. Police said so."
    )
    allowed = context_labels(text, propose(text))
    assert allowed["Residents"] == allowed["Thousands"] == ("none",)
    assert allowed["Heavy"] == allowed["Police"] == ("none",)  # weather adjectives and public services too
    assert allowed["Witnesses"] == ("none",)  # the reporting-verb rule keeps only what is allowed
    assert "Critics Circle" not in allowed  # more than one word: a name
    assert "Shares" not in allowed  # also mid-sentence ("met Shares"): the occurrences disagree
    off = context_labels(text, propose(text), LabelRules(common_nouns=False))
    assert off["Residents"] == ("organization", "location", "none")


def test_a_run_led_by_a_common_noun_is_no_entity_but_its_right_side_may_be() -> None:
    text = "Shares of Nestlé fell. Residents of Rue de Rivoli complained. Friends of Ulm sang. Bank of Japan met."
    allowed = context_labels(text, propose(text))
    assert allowed["Shares of Nestlé"] == allowed["Shares"] == ("none",)
    assert allowed["Nestlé"] == ("organization",)  # the right side keeps its own rules (a known company)
    assert allowed["Residents of Rue de Rivoli"] == allowed["Residents"] == ("none",)
    assert "Rue de Rivoli" not in allowed  # left to the model
    assert "Friends of Ulm" not in allowed  # "friends" is not in the list (Friends of the Earth)
    assert allowed["Bank of Japan"] != ("none",)  # an organization's head, not a common noun
    off = context_labels(text, propose(text), LabelRules(common_noun_runs=False))
    assert "Shares of Nestlé" not in off and "Shares" not in off
