"""The per-request JSON schema that constrains decoding: one property per candidate, valued by a label enum.

Because the keys are fixed, required and ordered, the model cannot invent an entity, repeat one, or give
one span two types; its only freedom is the label. Whitespace is disabled so the output length is
predictable and no whitespace loop can run into the token budget.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Literal

from ner.schema import EntityType

if TYPE_CHECKING:
    from vllm import SamplingParams

Label = Literal["person", "organization", "location", "none"]
NAME_LABELS: tuple[Label, ...] = ("person", "organization", "location", "none")


def labelling_schema(names: Sequence[str], allowed: Mapping[str, Sequence[Label]] | None = None) -> dict[str, Any]:
    """`allowed` narrows the labels of some names (context the text gives away; `ner.candidates.context_labels`)."""
    allowed = allowed or {}
    return {
        "type": "object",
        "properties": {name: {"enum": list(allowed.get(name, NAME_LABELS))} for name in names},
        "required": list(names),
        "additionalProperties": False,
    }


def labelling_params(
    names: Sequence[str], max_tokens: int, allowed: Mapping[str, Sequence[Label]] | None = None
) -> SamplingParams:
    from vllm import SamplingParams
    from vllm.sampling_params import StructuredOutputsParams

    return SamplingParams(
        temperature=0,
        max_tokens=max_tokens,
        logprobs=0,  # the chosen token's log-probability only: what `label_scores` reads
        structured_outputs=StructuredOutputsParams(json=labelling_schema(names, allowed), disable_any_whitespace=True),
    )


def answer_json(labels: Mapping[str, str]) -> str:
    """The exact text the whitespace-free decoder produces (xgrammar keeps ", " and ": "), so few-shot
    answers match generated ones token for token."""
    return json.dumps(labels, ensure_ascii=False)


def parse_labels(output: str, names: Sequence[str]) -> list[tuple[EntityType, str]]:
    """(type, name) pairs of the names labelled as entities, in candidate order."""
    labels = read_labels(output, names)
    return [(label, name) for name in names if (label := labels[name]) != "none"]


def read_labels(output: str, names: Sequence[str]) -> dict[str, Label]:
    """Every candidate's label, "none" included."""
    labels = json.loads(output)
    if not isinstance(labels, dict) or set(labels) != set(names):
        raise ValueError(f"labels do not match the candidates: {output!r}")
    return labels


# A label value in the generated object; keys are candidate names, which never contain '": "'.
_VALUE = re.compile(r'":\s*"(' + "|".join(NAME_LABELS) + r')"')


def label_scores(
    output: str,
    token_ids: Sequence[int],
    logprobs: Sequence[Mapping[int, Any]],
    decode: Callable[[Sequence[int]], str],
) -> list[float | None]:
    """The probability of each label in `output`, in order: the product of the chosen tokens' probabilities
    over the tokens that spell the label.

    vLLM applies the grammar's mask before it computes log-probabilities, so a token the grammar forces has
    probability 1 and the first token where labels diverge ('"p' against '"o') carries the decision: the
    product is the label's probability among the labels the schema allowed at that point. Tokens are aligned
    with characters by the text vLLM decoded for each chosen token's log-probability, when those texts spell
    `output`; otherwise (a character split across tokens) by `decode`, which turns token ids into text.
    """
    ends = token_ends(output, token_ids, logprobs)
    if ends is None:
        return _decoded_scores(output, token_ids, logprobs, decode)
    starts = [0, *ends[:-1]]
    scores: list[float | None] = []
    token = 0
    for match in _VALUE.finditer(output):
        start, end = match.span(1)
        while token < len(ends) and ends[token] <= start:  # tokens wholly before the label
            token += 1
        logprob, covered = 0.0, False
        while token < len(ends) and starts[token] < end:  # the tokens that spell the label
            chosen = logprobs[token].get(token_ids[token])
            if chosen is None:
                break
            logprob += chosen.logprob
            covered = True
            token += 1
        scores.append(math.exp(logprob) if covered else None)
    return scores


def token_ends(output: str, token_ids: Sequence[int], logprobs: Sequence[Mapping[int, Any]]) -> list[int] | None:
    """Each token's end offset in `output`, read from the text vLLM decoded for its log-probability (`decoded_token`),
    when those texts spell `output` exactly; tokens after its end (the stop token) are left out. None otherwise:
    a character split across tokens decodes as U+FFFD or nothing, and an engine may leave the texts out."""
    ends: list[int] = []
    at = 0
    for token, chosen_id in enumerate(token_ids):
        if at == len(output):
            break
        chosen = logprobs[token].get(chosen_id) if token < len(logprobs) else None
        piece = getattr(chosen, "decoded_token", None)
        if not piece or "\ufffd" in piece or not output.startswith(piece, at):
            return None
        at += len(piece)
        ends.append(at)
    return ends if at == len(output) else None


def _decoded_scores(
    output: str,
    token_ids: Sequence[int],
    logprobs: Sequence[Mapping[int, Any]],
    decode: Callable[[Sequence[int]], str],
) -> list[float | None]:
    """`label_scores` by decoding: from the last label's end, where the text is always at a character boundary."""
    scores: list[float | None] = []
    synced, synced_at = 0, 0  # a token index whose text starts at a known character boundary of `output`
    for match in _VALUE.finditer(output):
        start, end = match.span(1)
        logprob, covered, token = 0.0, False, synced
        # len(decode(token_ids[synced:token])), carried from one token to the next: one decode per token.
        before = 0
        while token < len(token_ids) and synced_at + before < end:
            after = len(decode(token_ids[synced : token + 1]))
            if synced_at + after > start:  # the token spells the label
                chosen = logprobs[token].get(token_ids[token]) if token < len(logprobs) else None
                if chosen is None:
                    break
                logprob += chosen.logprob
                covered = True
            before = after
            token += 1
        # Decoding from the last sync point keeps a character split across tokens whole.
        synced_at += before
        synced = token
        scores.append(math.exp(logprob) if covered else None)
    return scores
