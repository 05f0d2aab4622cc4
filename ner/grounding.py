"""Keep only entities that occur in the input, merged, one type per span, with every occurrence's offsets.

A model can invent, misspell or re-case an entity; grounding is the single place that decides what
reaches the caller, so every path (typed candidates, free JSON, a LoRA adapter) gets the same guarantees.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
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

    def extraction(self, *, retries: int = 0, finish: str | None = None) -> Extraction:
        return Extraction(
            **self.entities.model_dump(), spans=self.spans, dropped=self.dropped, retries=retries, finish=finish
        )


def _normal(surface: str) -> str:
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


def ground(text: str, proposed: Iterable[tuple[EntityType, str]]) -> Grounded:
    """Ground `proposed` (type, surface) pairs in `text`; on a conflict the earlier pair wins."""
    typed: dict[str, tuple[EntityType, list[tuple[int, int]]]] = {}
    dropped = 0
    for kind, surface in proposed:
        key = _normal(surface)
        if key in typed:  # a duplicate, or the same text under a later (losing) type
            continue
        found = occurrences(text, surface)
        if not found:
            dropped += 1
            DROPPED.labels(type=kind).inc()
            continue
        typed[key] = (kind, found)

    # Longer entities claim text first, so "Paris" inside a claimed "Paris Saint-Germain" is not a second span.
    claimed: list[EntitySpan] = []
    for kind, found in sorted(typed.values(), key=lambda item: item[1][0][1] - item[1][0][0], reverse=True):
        for start, end in found:
            if not any(start < span.end and span.start < end for span in claimed):
                claimed.append(EntitySpan(type=kind, text=text[start:end], start=start, end=end))
    claimed.sort(key=lambda span: (span.start, span.end))
    return Grounded(entities=_lists(claimed), spans=claimed, dropped=dropped)


def _lists(spans: Sequence[EntitySpan]) -> Entities:
    # One entry per entity in order of first occurrence, spelled as in the input.
    lists: dict[str, list[str]] = {name: [] for name in ENTITY_FIELDS.values()}
    seen: set[str] = set()
    for span in spans:
        key = _normal(span.text)
        if key not in seen:
            seen.add(key)
            lists[ENTITY_FIELDS[span.type]].append(span.text)
    return Entities(**lists)
