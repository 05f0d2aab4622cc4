"""Training pairs -> token ids with response-only labels, and the padding collator.

A pair is the chat messages the service sends at inference and the answer it should get back (`finetune.tasks`
makes them for ViGGO and for NER labelling). The prompt is the chat template applied to those messages with
the generation prompt, tokenised on its own as vLLM does; the target is the answer followed by the token the
chat template closes an assistant turn with (`<|im_end|>` for SmolLM2), so the adapter learns to stop. Parts
of an answer the data cannot vouch for (`Pair.masked`) stay in the input but carry no loss.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from tqdm import tqdm

IGNORE_INDEX = -100
_MARKER = "\x00MR\x00"


@dataclass(frozen=True)
class Pair:
    messages: list[dict[str, str]]
    response: str
    masked: tuple[tuple[int, int], ...] = ()  # character spans of `response` that carry no loss


def render_prompt(tokenizer: Any, messages: list[dict[str, str]]) -> str:
    """The inference prompt for these chat messages, as text."""
    return str(tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True))


def end_of_turn_token(tokenizer: Any) -> str:
    """The special token the chat template ends an assistant message with (else the EOS token)."""
    messages = [{"role": "user", "content": "hi"}, {"role": "assistant", "content": _MARKER}]
    try:
        text = tokenizer.apply_chat_template(messages, tokenize=False)
    except Exception:  # no chat template: a plain causal LM
        text = ""
    tail = text.split(_MARKER, 1)[1] if _MARKER in text else ""
    specials = sorted(tokenizer.all_special_tokens, key=len, reverse=True)
    for token in specials:
        if token and tail.startswith(token):
            return token
    if tokenizer.eos_token is None:
        raise ValueError("the tokenizer has neither a chat template end-of-turn token nor an EOS token")
    return tokenizer.eos_token


@dataclass(frozen=True)
class Encoded:
    input_ids: list[int]
    labels: list[int]


def encode_example(tokenizer: Any, pair: Pair, eot: str, cutoff_len: int) -> Encoded | None:
    """Prompt + response ids; labels are -100 on the prompt and on masked spans. None where it exceeds
    cutoff_len and cannot fit."""
    prompt_ids = tokenizer(render_prompt(tokenizer, pair.messages), add_special_tokens=False)["input_ids"]
    response = tokenizer(pair.response + eot, add_special_tokens=False, return_offsets_mapping=bool(pair.masked))
    response_ids = response["input_ids"]
    response_labels = list(response_ids)
    if pair.masked:
        for i, (start, end) in enumerate(response["offset_mapping"]):
            if any(start < m_end and m_start < end for m_start, m_end in pair.masked):
                response_labels[i] = IGNORE_INDEX
    input_ids = prompt_ids + response_ids
    labels = [IGNORE_INDEX] * len(prompt_ids) + response_labels
    if len(input_ids) > cutoff_len:
        if len(prompt_ids) >= cutoff_len:
            return None  # nothing of the response would be left to learn
        input_ids, labels = input_ids[:cutoff_len], labels[:cutoff_len]
    return Encoded(input_ids, labels)


class EncodedDataset(torch.utils.data.Dataset):
    def __init__(self, items: Sequence[Encoded]) -> None:
        self.items = list(items)

    def __len__(self) -> int:
        return len(self.items)

    def __getitem__(self, index: int) -> dict[str, list[int]]:
        item = self.items[index]
        return {"input_ids": item.input_ids, "labels": item.labels}


def encode_examples(
    tokenizer: Any, pairs: Sequence[Pair], cutoff_len: int, *, drop_long: bool = True, desc: str = "tokenising"
) -> tuple[EncodedDataset, int]:
    """Encode training pairs; returns the dataset and how many were dropped for length."""
    eot = end_of_turn_token(tokenizer)
    items, dropped = [], 0
    for pair in tqdm(pairs, desc=desc, unit="ex", mininterval=1.0):
        encoded = encode_example(tokenizer, pair, eot, 1 << 30 if drop_long else cutoff_len)
        if encoded is None or len(encoded.input_ids) > cutoff_len:
            dropped += 1
            continue
        items.append(encoded)
    return EncodedDataset(items), dropped


@dataclass
class CausalLMCollator:
    """Right-pads a batch: pad id in input_ids, 0 in attention_mask, -100 in labels."""

    pad_token_id: int
    pad_to_multiple_of: int | None = None

    def __call__(self, features: Sequence[dict[str, list[int]]]) -> dict[str, torch.Tensor]:
        length = max(len(f["input_ids"]) for f in features)
        if self.pad_to_multiple_of:
            length = -(-length // self.pad_to_multiple_of) * self.pad_to_multiple_of
        input_ids = torch.full((len(features), length), self.pad_token_id, dtype=torch.long)
        labels = torch.full((len(features), length), IGNORE_INDEX, dtype=torch.long)
        attention_mask = torch.zeros((len(features), length), dtype=torch.long)
        for row, feature in enumerate(features):
            n = len(feature["input_ids"])
            input_ids[row, :n] = torch.tensor(feature["input_ids"])
            labels[row, :n] = torch.tensor(feature["labels"])
            attention_mask[row, :n] = 1
        return {"input_ids": input_ids, "attention_mask": attention_mask, "labels": labels}
