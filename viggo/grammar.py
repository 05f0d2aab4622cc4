"""An xgrammar EBNF grammar (vLLM structured outputs) that only admits well-formed MRs.

What it guarantees, so that `MeaningRepresentation.parse` never fails on constrained output:
one of the 9 acts; only the 14 attributes, each at most once and in the corpus' canonical order;
bracket-free values without leading, trailing or doubled spaces; lists of at most MAX_LIST_ITEMS;
closed vocabularies for ratings, ESRB, genres, platforms, perspectives and yes/no slots; four-digit
release years; and the empty value only in `request_attribute(attribute[])`, which the corpus always
writes with exactly one attribute.

Given the sentence's `value_spans`, open-slot values (name, developer, release date, specifier) are further
restricted to runs of the sentence's words, in any letter case: in the corpus 99.4% of those values occur
verbatim and most of the rest differ only in case ("Need For Speed" written, `name[Need for Speed]` meant).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping, Sequence
from typing import Literal

from viggo.mr import Value
from viggo.ontology import (
    ACTS,
    ATTRIBUTES,
    CLOSED_VALUES,
    EMPTY_VALUE_ACT,
    LIST_ATTRIBUTES,
    LIST_SEPARATOR,
    MAX_LIST_ITEMS,
    SLOT_SEPARATOR,
)


def _literal(text: str) -> str:
    # JSON string escaping is a subset of what xgrammar EBNF string literals accept.
    return json.dumps(text, ensure_ascii=False)


def _alternatives(options: Sequence[str]) -> str:
    return "(" + " | ".join(_literal(option) for option in options) + ")"


# A value of more words than this is not offered as a span (the corpus' longest open value has 8).
MAX_SPAN_WORDS = 10
_OUTER_PUNCTUATION = "\"'“”‘’«»()[]{},.;:!?\\"
_POSSESSIVE = re.compile(r"(?:'s|’s|'|’)$")
_ABBREVIATION = re.compile(r"(?:^|\s)(?:Inc|Co|Ltd|Jr|Sr|Dr|St|Vol)\.$")
_LETTER_RUN = re.compile(r"([^\W\d_]+)")
# A comma before these does not end the value: "November 13, 2018", "Spectrum HoloByte, Inc".
_COMMA_CONTINUES = re.compile(r"^(?:\d{4}\W*|Inc\b.*|Ltd\b.*|LLC\b.*|Co\b.*)$")


# "off": the fixed grammar only. "always": every request decodes under a grammar built from its own sentence
# (a compilation per request). "redecode": the fixed grammar first, and the sentence's grammar only for an
# answer with an open value that is not a run of the sentence's words: greedy decoding gives the same MR as
# "always" (see `outside_spans`) at the cost of "off" for every other answer.
SpanValues = Literal["off", "redecode", "always"]


def value_spans(sentence: str, max_words: int = MAX_SPAN_WORDS) -> list[str]:
    """Runs of up to `max_words` words of `sentence`, the run's outer punctuation (and a final possessive
    's: "Blizzard Entertainment's games") stripped, each once. Runs stop at a clause's end."""
    words = sentence.split()
    spans: dict[str, None] = {}
    for start in range(len(words)):
        for end in range(start + 1, min(start + max_words, len(words)) + 1):
            if end - 1 > start and _ends_a_clause(words[end - 2], words[end - 1]):
                break  # longer runs cross it too
            run = " ".join(words[start:end])
            span = run.strip(_OUTER_PUNCTUATION)
            # An abbreviation keeps its full stop: "Spectrum HoloByte, Inc." (a sentence's end is stripped).
            unpunctuated = run.rstrip(",;:!?")
            abbreviation = unpunctuated if _ABBREVIATION.search(unpunctuated) else ""
            for variant in (span, _POSSESSIVE.sub("", span), abbreviation.lstrip(_OUTER_PUNCTUATION)):
                if variant and "[" not in variant and "]" not in variant and " " not in (variant[0], variant[-1]):
                    spans[variant] = None
    return list(spans)


def _ends_a_clause(word: str, following: str) -> bool:
    """Punctuation after `word` that no value crosses; "Dr." or "Vol." end nothing (values keep colons)."""
    if word.endswith(","):
        return not _COMMA_CONTINUES.match(following)
    return word.endswith((";", "!", "?")) or (word.endswith(".") and len(word) > 4)


def _caseless(text: str) -> str:
    """An EBNF sequence matching `text` in any letter case: `[Nn] [Ee] [Ee] [Dd] " 2" ...`."""
    parts: list[str] = []
    for piece in _LETTER_RUN.split(text):
        if not piece:
            continue
        if _LETTER_RUN.fullmatch(piece):
            parts.extend(f"[{c.lower()}{c.upper()}]" if c.lower() != c.upper() else _literal(c) for c in piece)
        else:
            parts.append(_literal(piece))
    return " ".join(parts)


def _item_rule(attribute: str) -> str:
    if attribute in CLOSED_VALUES:
        return _alternatives(CLOSED_VALUES[attribute])
    if attribute == "release_year":
        return "[0-9] [0-9] [0-9] [0-9]"
    return "free_text"


def _admits(span: str, value: str) -> bool:
    """Whether `_caseless(span)` matches `value`: the same characters, a letter in either of its cases."""
    return len(span) == len(value) and all(
        s == v or (_LETTER_RUN.fullmatch(s) is not None and v in s.lower() + s.upper())
        for s, v in zip(span, value, strict=True)
    )


def outside_spans(attributes: Mapping[str, Value], spans: Sequence[str]) -> list[str]:
    """The attributes whose value (or a list item of it) the grammar built from `spans` would not admit.

    Empty for an MR decoded greedily under `MR_GRAMMAR`: decoding under the sentence's grammar gives the same MR
    (that grammar only masks more tokens, and none of this MR's), so the sentence's grammar can change an answer
    only where this names an attribute.
    """
    outside = []
    for attribute in SPAN_ATTRIBUTES:
        value = attributes.get(attribute)
        items = [value] if isinstance(value, str) else list(value or ())
        if any(item and not any(_admits(span, item) for span in spans) for item in items):
            outside.append(attribute)
    return outside


def build_grammar(spans: Sequence[str] = ()) -> str:
    """The MR grammar; with `spans` (`value_spans` of the sentence), open-slot values are among them."""
    valued_acts = [act for act in ACTS if act != EMPTY_VALUE_ACT]
    first = ATTRIBUTES[0]
    lines = [
        "root ::= empty_value_mr | valued_mr",
        f'empty_value_mr ::= {_literal(EMPTY_VALUE_ACT + "(")} {_alternatives([a + "[]" for a in ATTRIBUTES])} ")"',
        f'valued_mr ::= {_alternatives(valued_acts)} "(" first_{first} ")"',
    ]
    if spans:
        lines.append("free_text ::= " + " | ".join(f"({_caseless(span)})" for span in spans))
    else:
        # Words of non-space, non-bracket characters joined by single spaces.
        lines += ['free_text ::= word (" " word)*', r"word ::= [^\[\]\r\n\t ]+"]
    for index, attribute in enumerate(ATTRIBUTES):
        later = ATTRIBUTES[index + 1] if index + 1 < len(ATTRIBUTES) else None
        value = f"item_{attribute}"
        if attribute in LIST_ATTRIBUTES:
            # Nested optionals rather than `{0,n}`, which older xgrammar releases do not parse.
            more = ""
            for _ in range(MAX_LIST_ITEMS - 1):
                more = f" ({_literal(LIST_SEPARATOR)} item_{attribute}{more})?"
            value += more
        lines.append(f"item_{attribute} ::= {_item_rule(attribute)}")
        lines.append(f'slot_{attribute} ::= {_literal(attribute + "[")} {value} "]"')
        # first_A: a non-empty run of slots from A on, in order; rest_A: the possibly empty
        # ", slot" continuation from A on. Linear in the number of attributes, unlike permutations.
        if later is None:
            lines.append(f"first_{attribute} ::= slot_{attribute}")
        else:
            lines.append(f"first_{attribute} ::= slot_{attribute} rest_{later} | first_{later}")
        if index > 0:
            tail = f" rest_{later}" if later else ""
            lines.append(f"rest_{attribute} ::= ({_literal(SLOT_SEPARATOR)} slot_{attribute})?{tail}")
    return "\n".join(lines) + "\n"


MR_GRAMMAR = build_grammar()
# The attributes whose values come from `free_text`, the rule that `value_spans` narrows.
SPAN_ATTRIBUTES: tuple[str, ...] = tuple(a for a in ATTRIBUTES if _item_rule(a) == "free_text")
