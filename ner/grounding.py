"""Keep only entities that occur in the input, merged, one type per span, with every occurrence's offsets.

A model can invent, misspell or re-case an entity; grounding is the single place that decides what
reaches the caller, so every path (typed candidates, free JSON, a LoRA adapter) gets the same guarantees.
"""

from __future__ import annotations

import bisect
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field

from prometheus_client import Counter

from ner.schema import ENTITY_FIELDS, Entities, EntitySpan, EntityType, Extraction

DROPPED = Counter(
    "ner_dropped_entities_total",
    "Entities a model produced that do not occur in the input text and were dropped.",
    ["type"],
)


@dataclass
class Grounded:
    entities: Entities
    spans: list[EntitySpan] = field(default_factory=list)
    dropped: int = 0

    def above(self, min_score: float | None) -> Grounded:
        """Only spans scored at least `min_score` (spans without a score are kept)."""
        if not min_score:
            return self
        spans = [s for s in self.spans if s.score is None or s.score >= min_score]
        return Grounded(entities=_lists(spans), spans=spans, dropped=self.dropped)

    def extraction(self, *, retries: int = 0, finish: str | None = None) -> Extraction:
        return Extraction(
            **self.entities.model_dump(), spans=self.spans, dropped=self.dropped, retries=retries, finish=finish
        )


def normal(surface: str) -> str:
    return " ".join(surface.split()).casefold()


def _bounded(text: str, start: int, end: int) -> bool:
    # "Apple" must not match inside "Pineapple": an alphanumeric edge needs a non-alphanumeric neighbour.
    left_ok = start == 0 or not (text[start].isalnum() and text[start - 1].isalnum())
    right_ok = end == len(text) or not (text[end - 1].isalnum() and text[end].isalnum())
    return left_ok and right_ok


def occurrences(text: str, surface: str) -> list[tuple[int, int]]:
    """Word-bounded occurrences: exact ones if any, else ignoring case and runs of whitespace."""
    words = surface.split()
    if not words:
        return []
    exact = [(m.start(), m.end()) for m in re.finditer(re.escape(surface), text)]
    found = [span for span in exact if _bounded(text, *span)]
    if found:
        return found
    loose = re.compile(r"\s+".join(re.escape(word) for word in words), re.IGNORECASE)
    return [(m.start(), m.end()) for m in loose.finditer(text) if _bounded(text, m.start(), m.end())]


def pairs_of(entities: Entities) -> list[tuple[EntityType, str]]:
    """(type, surface) pairs in field order, which makes the first listed type win a conflict."""
    return [(kind, surface) for kind, name in ENTITY_FIELDS.items() for surface in getattr(entities, name)]


def ground(
    text: str, proposed: Iterable[tuple[EntityType, str]], scores: Mapping[str, float | None] | None = None
) -> Grounded:
    """Ground `proposed` (type, surface) pairs in `text`; on a conflict the earlier pair wins.

    `scores` (keyed by `normal(surface)`) gives each entity's score, copied to every span of it.
    """
    scores = scores or {}
    typed: dict[str, tuple[EntityType, list[tuple[int, int]]]] = {}
    dropped = 0
    for kind, surface in proposed:
        key = normal(surface)
        if key in typed:  # a duplicate, or the same text under a later (losing) type
            continue
        found = occurrences(text, surface)
        if not found:
            dropped += 1
            DROPPED.labels(type=kind).inc()
            continue
        typed[key] = (kind, found)

    # Longer entities claim text first, so "Paris" inside a claimed "Paris Saint-Germain" is not a second span.
    # Claimed spans never overlap, so sorted by start they are sorted by end too: one bisect finds a clash.
    starts: list[int] = []
    claimed: list[EntitySpan] = []
    ordered = sorted(typed.items(), key=lambda item: item[1][1][0][1] - item[1][1][0][0], reverse=True)
    for key, (kind, found) in ordered:
        for start, end in found:
            at = bisect.bisect_left(starts, end)  # claimed spans from `at` on start at or after `end`
            if at and claimed[at - 1].end > start:
                continue
            starts.insert(at, start)
            claimed.insert(at, EntitySpan(type=kind, text=text[start:end], start=start, end=end, score=scores.get(key)))
    return Grounded(entities=_lists(claimed), spans=claimed, dropped=dropped)


def _lists(spans: Sequence[EntitySpan]) -> Entities:
    # One entry per entity in order of first occurrence, spelled as in the input.
    lists: dict[str, list[str]] = {name: [] for name in ENTITY_FIELDS.values()}
    seen: set[str] = set()
    for span in spans:
        key = normal(span.text)
        if key not in seen:
            seen.add(key)
            lists[ENTITY_FIELDS[span.type]].append(span.text)
    return Entities(**lists)
