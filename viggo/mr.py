"""The meaning representation `act(attr[value], attr[v1, v2], ...)`: parsing and printing.

`MeaningRepresentation.parse(text).to_string() == text` for every MR of the corpus, so exact-match
scores can compare either strings or parsed objects.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from viggo.ontology import ACTS, ATTRIBUTES, EMPTY_VALUE_ACT, LIST_ATTRIBUTES, LIST_SEPARATOR, SLOT_SEPARATOR

Value = str | list[str]

_FRAME = re.compile(r"(?P<act>[a-z_]+)\((?P<body>.*)\)", re.DOTALL)
# A value runs to the first "]", which is why values may not contain brackets.
_SLOT = re.compile(r"(?P<name>[a-z_]+)\[(?P<value>[^\[\]]*)\]")


class MRParseError(ValueError):
    """The text is not a well-formed ViGGO meaning representation."""


@dataclass
class MeaningRepresentation:
    act: str
    # Insertion order is the order the MR lists its slots; exact match depends on it.
    attributes: dict[str, Value] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str) -> MeaningRepresentation:
        frame = _FRAME.fullmatch(text)
        if frame is None:
            raise MRParseError(f"expected 'act(attribute[value], ...)', got {text!r}")
        act, body = frame["act"], frame["body"]
        if act not in ACTS:
            raise MRParseError(f"unknown dialogue act {act!r}; expected one of {', '.join(ACTS)}")
        attributes: dict[str, Value] = {}
        position = 0
        while position < len(body):
            if attributes:
                if not body.startswith(SLOT_SEPARATOR, position):
                    raise MRParseError(f"expected ', ' between attributes at {body[position:]!r} in {text!r}")
                position += len(SLOT_SEPARATOR)
            slot = _SLOT.match(body, position)
            if slot is None:
                raise MRParseError(f"expected 'attribute[value]' at {body[position:]!r} in {text!r}")
            name, value = slot["name"], slot["value"]
            if name not in ATTRIBUTES:
                raise MRParseError(f"unknown attribute {name!r} in {text!r}")
            if name in attributes:
                raise MRParseError(f"attribute {name!r} appears twice in {text!r}")
            if not value and act != EMPTY_VALUE_ACT:
                raise MRParseError(f"attribute {name!r} has an empty value, which only {EMPTY_VALUE_ACT} allows")
            attributes[name] = value.split(LIST_SEPARATOR) if value and name in LIST_ATTRIBUTES else value
            position = slot.end()
        if not attributes:
            raise MRParseError(f"an MR needs at least one attribute: {text!r}")
        return cls(act, attributes)

    def to_string(self) -> str:
        slots = SLOT_SEPARATOR.join(f"{name}[{_format_value(value)}]" for name, value in self.attributes.items())
        return f"{self.act}({slots})"

    def slots(self) -> set[tuple[str, str]]:
        """(attribute, value) pairs with lists split into items: the unit of slot precision/recall."""
        pairs = set()
        for name, value in self.attributes.items():
            for item in value if isinstance(value, list) else [value]:
                pairs.add((name, item))
        return pairs


def _format_value(value: Value) -> str:
    return LIST_SEPARATOR.join(value) if isinstance(value, list) else value
