"""An xgrammar EBNF grammar (vLLM structured outputs) that only admits well-formed MRs.

What it guarantees, so that `MeaningRepresentation.parse` never fails on constrained output:
one of the 9 acts; only the 14 attributes, each at most once and in the corpus' canonical order;
bracket-free values without leading, trailing or doubled spaces; lists of at most MAX_LIST_ITEMS;
closed vocabularies for ratings, ESRB, genres, platforms, perspectives and yes/no slots; four-digit
release years; and the empty value only in `request_attribute(attribute[])`, which the corpus always
writes with exactly one attribute.
"""

from __future__ import annotations

import json
from collections.abc import Sequence

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


def _item_rule(attribute: str) -> str:
    if attribute in CLOSED_VALUES:
        return _alternatives(CLOSED_VALUES[attribute])
    if attribute == "release_year":
        return "[0-9] [0-9] [0-9] [0-9]"
    return "free_text"


def build_grammar() -> str:
    valued_acts = [act for act in ACTS if act != EMPTY_VALUE_ACT]
    first = ATTRIBUTES[0]
    lines = [
        "root ::= empty_value_mr | valued_mr",
        f'empty_value_mr ::= {_literal(EMPTY_VALUE_ACT + "(")} {_alternatives([a + "[]" for a in ATTRIBUTES])} ")"',
        f'valued_mr ::= {_alternatives(valued_acts)} "(" first_{first} ")"',
        # Words of non-space, non-bracket characters joined by single spaces.
        'free_text ::= word (" " word)*',
        r"word ::= [^\[\]\r\n\t ]+",
    ]
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
