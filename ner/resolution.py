"""From the model's labels to one decision per string: "X of Y" runs, and one type per string in a document.

Rules (deterministic, applied in this order):
1. A name run joined by "of" is offered with its two sides. If the model labels the left side a person
   and the right side an organization or a location ("Tim Cook of Apple", "Sadiq Khan of London"), the
   sides are the entities and the run is not. Otherwise, if the run is labelled an entity, it is one
   ("Bank of England") and its sides are not reported for it; if the run is "none", its sides keep their
   own labels ("Residents of Lampedusa": "Lampedusa" a location).
2. Every other candidate keeps its label. Labels are per string, so a string gets one label per part.
3. Across the parts of a document, each string (compared ignoring case and runs of whitespace) gets the
   label with the highest summed probability over the parts where it was a candidate ("none" competes
   too); ties go to the label that came first. Grounding then reports every occurrence of the string in
   the whole document with that type, and a longer entity claims its text before a shorter one inside
   it ("Paris Saint-Germain" before "Paris").
4. A single word that is the last word of a name decided a person in the same document is that person too
   ("Mensah" after "Kwame Mensah", "Huang" after "Jensen Huang of Nvidia"), whatever it was labelled alone:
   the 135M model called such surnames organizations or places (`surname_persons`).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from ner.candidates import Candidate, alternatives
from ner.decoding import Label
from ner.grounding import normal
from ner.schema import EntityType


@dataclass(frozen=True)
class Labelled:
    label: Label
    score: float | None  # the label's probability; None when the generator gave no log-probabilities


@dataclass(frozen=True)
class Decided:
    type: EntityType
    surface: str
    score: float | None


def labelling_names(candidates: Sequence[Candidate]) -> list[str]:
    """The strings the model labels: every name candidate, each run joined by "of" followed by its sides."""
    names: list[str] = []
    for candidate in candidates:
        if candidate.kind == "name":
            names.append(candidate.text)
            names.extend(side.text for side in alternatives(candidate) or ())
    return list(dict.fromkeys(names))


def resolve(candidates: Sequence[Candidate], labels: Mapping[str, Labelled]) -> dict[str, Labelled]:
    """Rules 1 and 2: the label each string of one part stands for."""
    decided: dict[str, Labelled] = {}
    for candidate in candidates:
        if candidate.kind != "name":
            continue
        run, sides = labels[candidate.text], alternatives(candidate)
        person_of = sides is not None and labels[sides[0].text].label == "person"
        if sides and (
            (person_of and labels[sides[1].text].label in ("organization", "location")) or run.label == "none"
        ):
            decided.setdefault(candidate.text, Labelled("none", run.score))
            for side in sides:
                decided[side.text] = labels[side.text]
        else:
            decided.setdefault(candidate.text, run)
    return decided


def merge(parts: Iterable[Mapping[str, Labelled]], surname_persons: bool = True) -> list[Decided]:
    """Rules 3 and 4: one label per string across parts, entities in order of first appearance."""
    votes: dict[str, dict[Label, list[float | None]]] = {}
    surfaces: dict[str, str] = {}
    for part in parts:
        for surface, labelled in part.items():
            key = normal(surface)
            surfaces.setdefault(key, surface)
            votes.setdefault(key, {}).setdefault(labelled.label, []).append(labelled.score)
    chosen: dict[str, tuple[Label, float | None]] = {}
    for key, by_label in votes.items():
        # max() keeps the first of equal weights, and dicts keep the order labels were first seen.
        label, scores = max(by_label.items(), key=lambda item: sum(1.0 if s is None else s for s in item[1]))
        known = [s for s in scores if s is not None]
        chosen[key] = (label, sum(known) / len(known) if known else None)
    if surname_persons:
        persons = {key.split()[-1]: chosen[key][1] for key in chosen if chosen[key][0] == "person" and " " in key}
        for key in chosen:
            if key in persons:
                chosen[key] = ("person", persons[key])
    return [Decided(label, surfaces[key], score) for key, (label, score) in chosen.items() if label != "none"]
