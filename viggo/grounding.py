"""Grounding for MRs: open-slot values (names, developers, dates, specifiers) must come from the sentence.

The grammar keeps every MR well-formed, but it cannot stop a model from inventing a value: asked about
"x", the base model answered `inform(name[x], exp_release_date[2015], developer[X])`. In the corpus,
every open-slot value but 3 of 10,300 occurs in its sentence (train and valid, ignoring case, spaces and
punctuation, so "fast-paced" matches "fast paced"), so a value that does not is the model's invention,
and a sentence whose MR has one is most likely not about a video game at all. Closed slots (rating,
genres, platforms, yes/no) are paraphrased by design ("M rated" -> `esrb[M (for Mature)]`) and are not
checked.
"""

from __future__ import annotations

import re

from prometheus_client import Counter

from viggo.mr import MeaningRepresentation

OPEN_ATTRIBUTES: tuple[str, ...] = ("name", "exp_release_date", "release_year", "developer", "specifier")

UNGROUNDED = Counter(
    "viggo_ungrounded_values", "ViGGO MR values that do not occur in the input sentence.", ["attribute"]
)

_NOT_ALNUM = re.compile(r"[\W_]+")


def _squash(text: str) -> str:
    return _NOT_ALNUM.sub("", text.casefold())


def ungrounded_attributes(mr: MeaningRepresentation, sentence: str) -> list[str]:
    """Open attributes of `mr` whose value does not occur in `sentence`, in MR order; counted in /metrics."""
    haystack = _squash(sentence)
    missing = []
    for attribute in OPEN_ATTRIBUTES:
        value = mr.attributes.get(attribute)
        if isinstance(value, str) and value and _squash(value) not in haystack:
            missing.append(attribute)
            UNGROUNDED.labels(attribute).inc()
    return [a for a in mr.attributes if a in missing]
