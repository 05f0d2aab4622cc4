"""The per-request JSON schema that constrains decoding: one property per candidate, valued by a label enum.

Because the keys are fixed, required and ordered, the model cannot invent an entity, repeat one, or give
one span two types; its only freedom is the label. Whitespace is disabled so the output length is
predictable and no whitespace loop can run into the token budget.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, Literal

from ner.schema import EntityType

if TYPE_CHECKING:
    from vllm import SamplingParams

Label = Literal["person", "organization", "location", "none"]
NAME_LABELS: tuple[Label, ...] = ("person", "organization", "location", "none")


def labelling_schema(names: Sequence[str]) -> dict[str, Any]:
    return {
        "type": "object",
        "properties": {name: {"enum": list(NAME_LABELS)} for name in names},
        "required": list(names),
        "additionalProperties": False,
    }


def labelling_params(names: Sequence[str], max_tokens: int) -> SamplingParams:
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    return SamplingParams(
        temperature=0,
        max_tokens=max_tokens,
        structured_outputs=StructuredOutputsParams(json=labelling_schema(names), disable_any_whitespace=True),
    )


def answer_json(labels: dict[str, str]) -> str:
    """The exact text the whitespace-free decoder produces (xgrammar keeps ", " and ": "), so few-shot
    answers match generated ones token for token."""
    return json.dumps(labels, ensure_ascii=False)


def parse_labels(output: str, names: Sequence[str]) -> list[tuple[EntityType, str]]:
    """(type, name) pairs of the names labelled as entities, in candidate order."""
    labels = json.loads(output)
    if not isinstance(labels, dict) or set(labels) != set(names):
        raise ValueError(f"labels do not match the candidates: {output!r}")
    return [(label, name) for name in names if (label := labels[name]) != "none"]
