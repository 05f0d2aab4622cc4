"""Deterministic candidate spans: the only strings the model may label, so it cannot invent an entity.

Names are runs of capitalised words (joined by connectors such as "of", "de", "&"); dates come from
patterns that are unambiguous enough to be typed without the model. Recall matters more than
precision here: the model labels a wrong candidate "none", but it can never add a missing one.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Literal

from ner.decoding import Label
from ner.gazetteer import (
    is_demonym,
    is_known_organization,
    is_known_person,
    is_known_place,
    starts_with_given_name,
)

_MONTH_NAMES = "January|February|March|April|May|June|July|August|September|October|November|December"
_MONTH = rf"(?:{_MONTH_NAMES}|(?:Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sept?|Oct|Nov|Dec)\.?)"
_WEEKDAY = r"(?:Monday|Tuesday|Wednesday|Thursday|Friday|Saturday|Sunday)"
_DAY = r"(?:[12]\d|3[01]|0?[1-9])(?:st|nd|rd|th)?"
_YEAR = r"(?:1[0-9]\d\d|20\d\d)"
_CALENDAR = (
    rf"{_DAY}(?:\s+of)?\s+{_MONTH}(?:,?\s+{_YEAR})?"  # 4 March 2019, 4th of March
    rf"|{_MONTH}\s+{_DAY}(?:,?\s+{_YEAR})?(?!\d)"  # March 11, 2020
    rf"|{_MONTH},?\s+{_YEAR}"  # June 2023
    rf"|(?:[Ss]pring|[Ss]ummer|[Aa]utumn|[Ww]inter)\s+{_YEAR}"  # spring 2027 ("fall" is a verb as often)
    rf"|{_YEAR}-[01]\d-[0-3]\d"  # 2020-03-11
    rf"|[0-3]?\d/[01]?\d/(?:\d\d)?\d\d"  # 11/03/2020
)
_DATE = re.compile(
    rf"\b(?:{_WEEKDAY}(?:,?\s+(?:{_CALENDAR}))?"
    rf"|{_CALENDAR}"
    # "the 1990s" is reported as "1990s": a lowercase article is no part of a name or a date (the gold sets' rule).
    r"|(?:early\s+|mid-|late\s+)?(?:1[0-9]|20)\d0s"
    r"|(?:[12]?\d)(?:st|nd|rd|th)\s+century"
    # A bare month, except "May" (a verb and a name far more often than a date).
    r"|(?:January|February|March|April|June|July|August|September|October|November|December)"
    rf"|(?<![$€£#.,]){_YEAR}(?![\d.,%]\d|%))\b"
)

# Capitalised words that start sentences or clauses but never start a name.
_FUNCTION_WORDS = frozenset(
    [
        "a",
        "an",
        "the",
        "this",
        "that",
        "these",
        "those",
        "it",
        "its",
        "he",
        "she",
        "they",
        "we",
        "i",
        "you",
        "my",
        "our",
        "your",
        "his",
        "her",
        "their",
        "on",
        "in",
        "at",
        "by",
        "for",
        "from",
        "to",
        "with",
        "of",
        "into",
        "onto",
        "after",
        "before",
        "during",
        "when",
        "while",
        "since",
        "until",
        "although",
        "though",
        "if",
        "as",
        "so",
        "but",
        "and",
        "or",
        "nor",
        "then",
        "however",
        "meanwhile",
        "also",
        "yet",
        "still",
        "only",
        "even",
        "just",
        "thus",
        "therefore",
        "please",
        "yesterday",
        "today",
        "tomorrow",
        "tonight",
        "last",
        "next",
        "early",
        "late",
        "earlier",
        "later",
        "now",
        "here",
        "there",
        "what",
        "who",
        "whom",
        "whose",
        "why",
        "how",
        "where",
        "which",
        "some",
        "many",
        "most",
        "all",
        "every",
        "each",
        "no",
        "not",
        "both",
        "either",
        "neither",
        "several",
        "few",
        "more",
        "less",
        "one",
        "two",
        "three",
        "four",
        "five",
        "six",
        "seven",
        "eight",
        "nine",
        "ten",
        "according",
        "under",
        "over",
        "about",
        "between",
        "despite",
        "following",
        "among",
        "around",
        "through",
        "without",
        "within",
        "across",
        "against",
        "toward",
        "towards",
    ]
)
_HONORIFICS = frozenset(["mr", "mrs", "ms", "miss", "mx", "dr", "prof", "sir", "dame", "lord", "lady", "rev", "fr"])
# Titles are dropped in front of a name ("President Emmanuel Macron"), but kept when alone.
_TITLES = _HONORIFICS | frozenset(
    [
        "president",
        "chancellor",
        "king",
        "queen",
        "prince",
        "princess",
        "pope",
        "emperor",
        "senator",
        "governor",
        "mayor",
        "prime",
        "minister",
        "premier",
        "ceo",
        "chairman",
        "chairwoman",
        "professor",
    ]
)
# Abbreviations whose period does not end the name ("St. Louis", "Dr. Jane Goodall").
ABBREVIATIONS = _HONORIFICS | frozenset(["st", "mt", "ft", "jr", "sr", "inc", "ltd", "co", "corp"])
CONNECTORS = frozenset(
    ["of", "de", "du", "da", "das", "do", "dos", "del", "della", "der", "den", "van", "von", "la", "le", "y", "&"]
)

_TOKEN = re.compile(r"[^\W\d_][\w]*(?:[-'’][^\W\d_][\w]*)*|&")
_POSSESSIVE = re.compile(r"['’]s?$")


@dataclass(frozen=True)
class Candidate:
    text: str
    start: int
    end: int
    kind: Literal["name", "date"]


def _dates(text: str) -> list[Candidate]:
    return [Candidate(m.group(), m.start(), m.end(), "date") for m in _DATE.finditer(text)]


# What may stand between one sentence's final stop and the next one's first word: spaces, quotes and brackets that
# open the new sentence or close the last ("... on 12 May.” The board", "(... in 2020.) On Monday").
_BETWEEN_SENTENCES = frozenset(" \t\"'“‘([”’)]")


def _starts_sentence(text: str, start: int) -> bool:
    # A walk back, not a copy of the text before `start`: that copy, made for every run of a 100,000-character
    # document, made candidate proposal quadratic in the document's length.
    while start > 0 and text[start - 1] in _BETWEEN_SENTENCES:
        start -= 1
    return start == 0 or text[start - 1] in ".!?:;\n"


def _is_capitalised(word: str) -> bool:
    return word[0].isupper() and not any(ch.isdigit() for ch in word)


def _joins(text: str, previous: re.Match[str], token: re.Match[str]) -> bool:
    """Whether `token` may continue the name that ends with `previous`."""
    if _POSSESSIVE.search(previous.group()):  # "Kenya's Eliud Kipchoge" is two names
        return False
    gap = text[previous.end() : token.start()]
    if gap.startswith("."):
        word = previous.group()
        if not (word.casefold() in ABBREVIATIONS or len(word) == 1):  # initials: "J. K. Rowling"
            return False
        gap = gap[1:]
    return gap.strip(" \t") == ""


def _names(text: str, taken: list[tuple[int, int]]) -> list[Candidate]:
    """Runs of capitalised tokens, allowed to cross single spaces, connectors and abbreviation periods."""
    tokens = _outside(_TOKEN.finditer(text), taken)
    runs: list[list[re.Match[str]]] = []
    run: list[re.Match[str]] = []
    for token in tokens:
        word = token.group()
        if run and not _joins(text, run[-1], token):
            runs.append(run)
            run = []
        # "C$185", "HK$" and "R$" are amounts, not names; nor is the "X" of "777X", glued to a number.
        not_a_word = text.startswith("$", token.end()) or (token.start() > 0 and text[token.start() - 1].isdigit())
        if not not_a_word and (_is_capitalised(word) or (run and word.casefold() in CONNECTORS)):
            run.append(token)
        elif run:
            runs.append(run)
            run = []
    if run:
        runs.append(run)
    return [candidate for run in runs if (candidate := _trim(text, run))]


def _outside(tokens: Iterable[re.Match[str]], taken: list[tuple[int, int]]) -> list[re.Match[str]]:
    """The tokens that start in none of the `taken` spans (in text order, not overlapping): one walk over both, not a
    look at every span for every token, which a long document full of dates made quadratic."""
    kept, k = [], 0
    for token in tokens:
        while k < len(taken) and taken[k][1] <= token.start():
            k += 1
        if k == len(taken) or token.start() < taken[k][0]:
            kept.append(token)
    return kept


def _trim(text: str, run: list[re.Match[str]]) -> Candidate | None:
    # Leading titles, a sentence-initial function word ("The", "On") and trailing connectors
    # are not part of the name; a mid-sentence capitalised "The" is ("The Hague"), and so is a capitalised
    # connector that starts one ("Le Monde", "De Beers", "Van Halen"): a run only starts with a capital.
    while run and (
        (run[0].group().casefold() in _TITLES and len(run) > 1)
        or (run[0].group().casefold() in _FUNCTION_WORDS and _starts_sentence(text, run[0].start()))
        or (run[0].group().casefold() in CONNECTORS and len(run) == 1)
        or run[0].group() == "I"
    ):
        run = run[1:]
    while run and run[-1].group().casefold() in CONNECTORS:
        run = run[:-1]
    if not run:
        return None
    start, end = run[0].start(), run[-1].end()
    possessive = _POSSESSIVE.search(text[start:end])
    if possessive:
        end -= len(possessive.group())
    return Candidate(text[start:end], start, end, "name")


def propose(text: str) -> list[Candidate]:
    """Non-overlapping candidates in text order; a date span is never also a name."""
    dates = _dates(text)
    names = _names(text, [(d.start, d.end) for d in dates])
    return sorted(dates + names, key=lambda c: c.start)


# "Tim Cook of Apple" is a person and an organization; "Bank of England" is one organization. Only the
# model can tell them apart, so a run joined by "of" is also offered as its two sides (see `alternatives`).
_SPLITTERS = frozenset(["of"])


def alternatives(candidate: Candidate) -> tuple[Candidate, Candidate] | None:
    """The two sides of a name run joined by "of" (at its first "of"), or None.

    "University of Tokyo" gives ("University", "Tokyo") too: the labels decide (`ner.resolution`).
    """
    if candidate.kind != "name":
        return None
    words = list(re.finditer(r"\S+", candidate.text))
    for before, word, after in zip(words, words[1:], words[2:], strict=False):
        if word.group() in _SPLITTERS:
            left, right = candidate.text[: before.end()], candidate.text[after.start() :]
            start = candidate.start
            return (
                Candidate(left, start, start + len(left), "name"),
                Candidate(right, start + after.start(), candidate.end, "name"),
            )
    return None


# A name right after one of these is a place ("in Vigo", "near Kaub"): never a person, and an organization
# only in rarer phrasings ("a stake in Tesla"), which the 135M model chose for most places when it could;
# one right after a title or honorific is a person ("Dr. Jane Goodall", "Pope Francis").
_PLACE_PREPOSITIONS = frozenset(["in", "near", "outside", "across", "throughout", "around"])
_BEFORE = re.compile(r"([^\W\d_]+)\.?\s+$")
# A single word after "from" is a place far more often than an organization ("a nurse from Busan", "flights
# from Munich" against "a statement from Google"), and so is a name after a place's own nouns with "of" ("mayor
# of Lyon", "the outskirts of Athens"): `LabelRules.place_phrases`. "President of ..." is left out (of Microsoft).
_FROM = re.compile(r"\bfrom\s+$", re.IGNORECASE)
_PLACE_NOUN_OF = re.compile(
    r"\b(?:mayor|governor|capital|city|town|village|outskirts|suburbs|north|south|east|west|northeast|northwest|"
    r"southeast|southwest|residents|citizens)\s+of\s+(?:the\s+)?$",
    re.IGNORECASE,
)
# The subject of a reporting verb ("Spotify said", "Agnès Pannier-Runacher said") is a person or an organization;
# the model called such subjects places or nothing (`LabelRules.speakers`). Countries are decided before this.
_SPEAKS = re.compile(
    r"\s+(?:said|says|told|reported|reports|announced|announces|added|wrote|warned|argued|confirmed|denied|"
    r"stated|claimed|insisted)\b"
)
_AGENTS: tuple[Label, ...] = ("person", "organization")
# A name of two or three words followed by an appositive naming a person's role ("Wojciech Zieliński, a striker
# for ...", "Emre Çağlar, a shopkeeper in ...") or by "(born" is a person (`LabelRules.appositive_persons`); the
# model called such names nothing. Only roles a company or place never has: "Kongsberg, a defence group" stays free.
_ROLES = (
    r"judge|striker|midfielder|defender|goalkeeper|winger|forward|coach|player|shopkeeper|trader|farmer|teacher|"
    r"lawyer|doctor|nurse|surgeon|spokesman|spokeswoman|spokesperson|minister|senator|lawmaker|politician|"
    r"economist|analyst|professor|researcher|scientist|student|singer|rapper|actor|actress|writer|author|novelist|"
    r"poet|journalist|reporter|engineer|pilot|driver|activist|director|chef|artist|painter|architect|diplomat|"
    r"prosecutor|detective|officer|soldier|veteran|mother|father|grandmother|grandfather|widow|resident|"
    r"fisherman|miner|worker|entrepreneur|billionaire|investor|banker|climber|runner|cyclist|swimmer|boxer|"
    r"mayor|governor|president|chairman|chairwoman|founder|executive"
)
_APPOSITIVE = re.compile(rf"\s*(?:,\s+(?:a|an|the)\s+(?:[\w'-]+\s+){{0,3}}?(?:{_ROLES})s?\b|\(born\b)", re.IGNORECASE)


def _words(*lines: str) -> frozenset[str]:
    return frozenset(" ".join(lines).split())


# Words that start news sentences as the sentence's subject and are no name: groups of people, quantities, markets,
# public services and weather. The model typed "Residents", "Witnesses", "Critics", "Thousands" and "Shares" at a
# sentence's start as persons, organizations or places (`LabelRules.common_nouns`); only a single word at a
# sentence's start is affected, so "Critics' Choice Awards" and a mid-sentence capital are left alone.
_COMMON_NOUNS = _words(
    "residents witnesses critics diplomats officials analysts investors protesters demonstrators scientists "
    "researchers experts economists farmers workers employees voters lawmakers legislators authorities doctors "
    "nurses teachers students parents children families people villagers passengers fans players soldiers troops "
    "rescuers firefighters volunteers refugees migrants survivors victims tourists shoppers consumers customers "
    "users drivers pilots miners traders bankers executives shareholders sources observers visitors neighbours "
    "neighbors thousands hundreds millions dozens tens billions shares stocks prices sales profits revenues "
    "markets exports imports wages rents wildfires floods storms rains temperatures unemployment inflation "
    # public services, transport, conflict and weather, and the adjectives that open weather news ("Heavy rain")
    "police schools hospitals flights trains buses fighting violence clashes drought droughts snow rain heat "
    "heavy severe torrential bushfires fishermen"
)


# A name's own head word gives its kind away wherever it stands: "Washington Post", "Times of India" and
# "International Monetary Fund" are organizations, "Hudson River" and "Mount Kenya" places, "Nobel Prize" and
# "Hurricane Ian" no entity at all; the 135M model called the first three persons. The head is the word
# before "of" ("Bank of Japan") or else the last word; a few designators lead instead ("Mount Kenya").
# Words that are also common surnames are left out (Park, Hall, Bay, Hill, Church, Ford, Lake as a head).
_ORGANIZATION_HEADS = _words(
    # company forms and corporate words
    "inc corp corporation ltd llc plc gmbh ag company holdings group industries technologies motors "
    "airlines airways labs studios pictures records entertainment media network broadcasting "
    # publications and broadcasters
    "post journal times herald tribune gazette telegraph chronicle magazine news press "
    # institutions, public bodies, associations
    "university college institute academy school museum orchestra foundation association society federation "
    "union league club party council committee commission ministry department agency bureau authority "
    "parliament congress senate assembly court police army navy service office organization organisation "
    "institution fund international"
)
# An organization or a place, never a person: "Bank of England" but "West Bank", a hospital or an airport.
_PLACE_OR_ORGANIZATION_HEADS = _words(
    "bank hospital airport stadium station palace cathedral hotel zoo theatre theater centre center tower gallery"
)
_LOCATION_HEADS = _words(
    "river mountains island islands sea ocean gulf valley desert canyon peninsula strait coast county "
    "province region district street avenue boulevard square road canal forest falls glacier bridge"
)
_LOCATION_LEADS = frozenset(["mount", "lake", "cape", "fort", "isle", "gulf"])
_ORGANIZATION_LEADS = frozenset(["university"])
# Events and awards are none of the four types, and neither are machines, laws and treaties ("Analytical
# Engine", "Hubble Space Telescope", "Clean Air Act", "Paris Agreement"), which the model called organizations.
_EVENT_HEADS = _words(
    "prize prizes award awards cup olympics games championship championships marathon war wars summit festival "
    "airshow expo biennale fringe"
)
_WORK_HEADS = _words("engine telescope satellite rover spacecraft act treaty agreement accord protocol")
_EVENT_LEADS = frozenset(["hurricane", "typhoon", "cyclone", "storm", "operation"])


def head_labels(name: str, works: bool = True) -> tuple[Label, ...] | None:
    """The labels `name`'s own words leave possible, or None when they say nothing; `works`: machines, laws
    and treaties are no entity (`LabelRules.work_heads`)."""
    words = [word.casefold().rstrip(".") for word in name.split()]
    if len(words) < 2:  # one word is its own head: "Police", "Shares" at a sentence's start say nothing
        return None
    head = words[words.index("of", 1) - 1] if "of" in words[1:] else words[-1]
    lead = words[0]
    if head in _EVENT_HEADS or lead in _EVENT_LEADS or (works and head in _WORK_HEADS):
        return ("none",)
    if head in _ORGANIZATION_HEADS or lead in _ORGANIZATION_LEADS:
        return ("organization", "none")
    if head in _LOCATION_HEADS or lead in _LOCATION_LEADS:
        return ("location", "none")
    if head in _PLACE_OR_ORGANIZATION_HEADS:
        # "Bank of England", "Reserve Bank of Australia": a bank named after its place ("West Bank" is a place).
        if head == "bank" and "of" in words[1:]:
            return ("organization", "none")
        return ("organization", "location", "none")
    return None


@dataclass(frozen=True)
class LabelRules:
    """Which rules narrow a name's labels before the model chooses (`context_labels`).

    `head_words`: a name's head word (`head_labels`). `lone_word_persons`: a single word is a person only
    after a title, or where it is also the last word of a longer name in the same text ("Merkel" beside
    "Angela Merkel"): in news text most single capitalised words are companies, outlets or places.
    `organization_heads_decide`: a name with an organization's head word ("... Journal", "Times of ...") is an
    organization, with no "none" left to the model, which called "Wall Street Journal" and the like "none".
    `work_heads`: a machine's, law's or treaty's head word ("... Engine", "... Act") makes a name no entity.
    `known_places`: a country or planet (`ner.gazetteer`) is a location; `known_organizations`: a large company,
    news outlet or international body there is an organization. `place_phrases`: a single word after
    "from", or a name after "mayor of", "outskirts of" and the like, is a location or none. `speakers`: the
    subject of a reporting verb ("... said") is a person or an organization (of what the rules above allow).
    `common_nouns`: a single word at a sentence's start that is a common noun of news subjects ("Residents",
    "Thousands", "Shares") is no entity. `common_noun_runs`: nor is an "X of Y" run whose left side is such a
    single word ("Shares of Nestlé", "Residents of Rue de Rivoli"), nor that side; its right side is labelled alone.
    `given_names`: two or three words that start with a common given name (`ner.gazetteer`) and have no head
    word that says otherwise are a person ("Satya Nadella", also as the side of "Satya Nadella of Microsoft").
    `location_heads_decide`: a name with a place's head word ("... Street", "Lake ...") is a location, with no
    "none" left to the model, which called "Syntagma Square" nothing. `demonyms`: a nationality's adjective alone
    ("Chinese", "Dutch") is no entity. `appositive_persons`: a name of two or three words followed by an
    appositive naming a person's role (", a judge at ...") or "(born" is a person.
    `known_persons`: a person known by one name (`ner.gazetteer`: "Pelé", "Adele") is a person, whatever the
    lone-word rule says. `surname_persons` acts after the model (`ner.resolution.merge`): a single word that ends
    a name decided a person in the same document is that person.
    """

    head_words: bool = True
    lone_word_persons: bool = True
    organization_heads_decide: bool = True
    work_heads: bool = True
    known_places: bool = True
    known_organizations: bool = True
    place_phrases: bool = True
    speakers: bool = True
    given_names: bool = True
    common_nouns: bool = True
    common_noun_runs: bool = True
    known_persons: bool = True
    location_heads_decide: bool = True
    demonyms: bool = True
    appositive_persons: bool = True
    surname_persons: bool = True


SHIPPED_RULES = LabelRules()


def name_endings(candidates: Sequence[Candidate]) -> frozenset[str]:
    """The last words of the longer names: a single word among them may be a person ("Merkel")."""
    return frozenset(c.text.split()[-1] for c in candidates if c.kind == "name" and " " in c.text)


def context_labels(
    text: str,
    candidates: Sequence[Candidate],
    rules: LabelRules = SHIPPED_RULES,
    endings: frozenset[str] | None = None,
) -> dict[str, tuple[Label, ...]]:
    """Labels a name may take: a location for a country or planet (`rules.known_places`), an organization for a
    known company, outlet or body (`rules.known_organizations`), else what its head word allows (`head_labels`),
    else a person for a name that starts with a given name (`rules.given_names`; these four for the sides of an
    "X of Y" run too), else what the words before it allow (a preposition, a title, `rules.place_phrases`) when
    every occurrence of it is preceded by such words, else (with `rules.lone_word_persons`) no person for a
    single word that ends no longer name (`endings`: of the whole document a part of which `text` is; default: of
    `candidates`) and none at all for a common noun that starts a sentence (`rules.common_nouns`) or the left side
    of an "X of Y" run (`rules.common_noun_runs`, which also makes the run none); before a
    reporting verb, only the person and organization among those (`rules.speakers`); no entry when nothing
    narrows it."""
    seen: dict[str, set[tuple[Label, ...]]] = {}
    by_head: dict[str, tuple[Label, ...]] = {}
    names = [candidate for candidate in candidates if candidate.kind == "name"]
    surnames = name_endings(candidates) if endings is None else endings
    for candidate in names:
        sides = alternatives(candidate)
        for name in (candidate, *(sides or ())):
            if rules.known_places and is_known_place(name.text):
                by_head[name.text] = ("location",)
            elif rules.known_organizations and is_known_organization(name.text):
                by_head[name.text] = ("organization",)
            elif rules.known_persons and is_known_person(name.text):
                by_head[name.text] = ("person",)
            elif rules.demonyms and is_demonym(name.text):
                by_head[name.text] = ("none",)
            elif rules.head_words and (labels_of_head := head_labels(name.text, rules.work_heads)) is not None:
                if rules.organization_heads_decide and labels_of_head == ("organization", "none"):
                    labels_of_head = ("organization",)
                if rules.location_heads_decide and labels_of_head == ("location", "none"):
                    labels_of_head = ("location",)
                by_head[name.text] = labels_of_head
            elif (rules.given_names and starts_with_given_name(name.text)) or (
                rules.appositive_persons
                and name is candidate
                and 2 <= len(name.text.split()) <= 3
                and _APPOSITIVE.match(text, name.end)
            ):
                by_head[name.text] = ("person",)
        if rules.common_noun_runs and sides and sides[0].text.casefold() in _COMMON_NOUNS:
            by_head[candidate.text] = by_head[sides[0].text] = ("none",)
        preceding = text[max(0, candidate.start - 40) : candidate.start]
        before = _BEFORE.search(preceding[-20:])
        word = before.group(1).casefold() if before else ""
        if word in _PLACE_PREPOSITIONS or (
            rules.place_phrases
            and ((" " not in candidate.text and _FROM.search(preceding)) or _PLACE_NOUN_OF.search(preceding))
        ):
            labels: tuple[Label, ...] = ("location", "none")
        elif word in _TITLES:
            labels = ("person", "none")
        elif (
            rules.common_nouns
            and candidate.text.casefold() in _COMMON_NOUNS
            and _starts_sentence(text, candidate.start)
        ):
            labels = ("none",)
        elif rules.lone_word_persons and " " not in candidate.text and candidate.text not in surnames:
            labels = ("organization", "location", "none")
        else:
            labels = ()
        # Not an "X of Y" run: "Maria Silva of Petrobras said" must stay free to split into its sides.
        if rules.speakers and _SPEAKS.match(text, candidate.end) and sides is None:
            agents = tuple(label for label in labels or _AGENTS if label in _AGENTS)
            labels = agents or labels  # "in Paris said" keeps its place
        seen.setdefault(candidate.text, set()).add(labels)
    by_context = {
        name: next(iter(options)) for name, options in seen.items() if len(options) == 1 and () not in options
    }
    return by_context | by_head


def unique_texts(candidates: list[Candidate], kind: Literal["name", "date"]) -> list[str]:
    """Distinct candidate strings of one kind, in order of first occurrence."""
    return list(dict.fromkeys(c.text for c in candidates if c.kind == kind))
