"""Long texts in parts that fit the model's context: sentences packed to a token budget, with their offsets.

A part is always whole sentences (a sentence longer than the budget is cut at whitespace), so the labeller
sees each candidate with the sentence around it, as in its few-shot examples. Offsets are into the original
text, so spans found in a part map back by adding the part's start.
"""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from ner.candidates import ABBREVIATIONS, CONNECTORS

# A sentence ends at . ! ? (and any closing quotes or brackets) followed by whitespace and a capital, digit
# or opening quote, or at a line break; "Dr. Jane" and "J. K. Rowling" do not end one (checked below).
_BOUNDARY = re.compile(r"(?<=[.!?])([\"'”’)\]]*)\s+(?=[\"'“‘(\[]?[^\W_a-z])|\s*\n\s*")
_LAST_WORD = re.compile(r"(\w+)\.\W*$")
_WORD = re.compile(r"\s+(\w+)")


@dataclass(frozen=True)
class Part:
    start: int
    end: int

    def of(self, text: str) -> str:
        return text[self.start : self.end]


def _ends_sentence(text: str, end: int) -> bool:
    """Whether the boundary found at `end` is not just the period of an abbreviation or an initial."""
    word = _LAST_WORD.search(text[max(0, end - 12) : end])
    return not (word and (word.group(1).casefold() in ABBREVIATIONS or len(word.group(1)) == 1))


def sentences(text: str) -> list[Part]:
    """Sentence spans that cover every non-space character of `text`, without surrounding whitespace."""
    parts: list[Part] = []
    start = 0
    for boundary in _BOUNDARY.finditer(text):
        if "\n" not in boundary.group() and not _ends_sentence(text, boundary.start()):
            continue
        parts.append(Part(start, boundary.end(1) if boundary.group(1) is not None else boundary.start()))
        start = boundary.end()
    parts.append(Part(start, len(text)))
    return [trimmed for part in parts if (trimmed := _trim(text, part))]


def _trim(text: str, part: Part) -> Part | None:
    piece = text[part.start : part.end]
    stripped = piece.strip()
    if not stripped:
        return None
    start = part.start + (len(piece) - len(piece.lstrip()))
    return Part(start, start + len(stripped))


def _cut(text: str, part: Part, pieces: int) -> list[Part]:
    """`part` cut into about `pieces` equal lengths, each cut at the space nearest its target, preferring a
    space before a lower-case word that cannot continue a name (so "World Trade Organization" stays whole)."""
    spaces = [m.start() for m in re.finditer(r"\s+", text[part.start : part.end])]
    safe = [at for at in spaces if _before_plain_word(text, part.start + at)]
    cuts = [part.start]
    for k in range(1, pieces):
        target = part.start + (part.end - part.start) * k // pieces
        for options in (safe, spaces):
            later = [part.start + at for at in options if part.start + at > cuts[-1]]
            if later:
                cuts.append(min(later, key=lambda at: abs(at - target)))
                break
    cuts.append(part.end)
    return [trimmed for a, b in itertools.pairwise(cuts) if (trimmed := _trim(text, Part(a, b)))]


def _before_plain_word(text: str, space: int) -> bool:
    word = _WORD.match(text, space)
    return bool(word and word.group(1)[0].islower() and word.group(1) not in CONNECTORS)


def pack(text: str, count_tokens: Callable[[str], int], budget: int) -> list[Part]:
    """Consecutive sentences joined while their tokens stay within `budget`; a longer sentence is cut."""
    units: list[tuple[Part, int]] = []
    for sentence in sentences(text):
        tokens = count_tokens(sentence.of(text))
        if tokens <= budget:
            units.append((sentence, tokens))
        else:
            pieces = _cut(text, sentence, math.ceil(tokens / budget) + 1)
            units.extend((piece, count_tokens(piece.of(text))) for piece in pieces)
    parts: list[Part] = []
    current: Part | None = None
    used = 0
    for unit, tokens in units:
        if current is not None and used + tokens <= budget:
            current, used = Part(current.start, unit.end), used + tokens
        else:
            if current is not None:
                parts.append(current)
            current, used = unit, tokens
    if current is not None:
        parts.append(current)
    return parts


def halves(text: str, part: Part) -> Sequence[Part]:
    """`part` in two (at a sentence boundary if it has one), or itself when it cannot be cut."""
    inner = sentences(part.of(text))
    if len(inner) > 1:
        middle = len(inner) // 2
        first = Part(part.start, part.start + inner[middle - 1].end)
        second = Part(part.start + inner[middle].start, part.end)
        return [first, second]
    cut = _cut(text, part, 2)
    return cut if len(cut) == 2 else [part]
