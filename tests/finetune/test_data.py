"""finetune/ data: the inference prompt, loss on the response tokens only (and not on masked spans), padding,
length cut-off."""

from __future__ import annotations

import json
from pathlib import Path

from transformers import PreTrainedTokenizerBase

from finetune.data import IGNORE_INDEX, CausalLMCollator, Pair, encode_examples, end_of_turn_token, render_prompt
from finetune.tasks import viggo_pairs
from viggo.dataset import ViggoExample
from viggo.prompt import build_messages


def pair(example: ViggoExample) -> Pair:
    return Pair(build_messages(example.sentence), example.mr)


def test_prompt_is_the_inference_prompt_and_target_ends_the_turn(tokenizer: PreTrainedTokenizerBase) -> None:
    sentence = "Is that the M rated PC game BioShock?"
    expected = tokenizer.apply_chat_template(build_messages(sentence), tokenize=False, add_generation_prompt=True)
    assert render_prompt(tokenizer, build_messages(sentence)) == expected
    assert end_of_turn_token(tokenizer) == "<|im_end|>"


def test_labels_mask_the_prompt(tokenizer: PreTrainedTokenizerBase) -> None:
    example = ViggoExample(
        "Is that the M rated PC game BioShock?", "confirm(name[BioShock], esrb[M (for Mature)], platforms[PC])"
    )
    dataset, dropped = encode_examples(tokenizer, [pair(example)], cutoff_len=512)
    assert dropped == 0
    item = dataset[0]
    prompt_ids = tokenizer(render_prompt(tokenizer, build_messages(example.sentence)), add_special_tokens=False)[
        "input_ids"
    ]
    mr_ids = tokenizer(example.mr, add_special_tokens=False)["input_ids"]
    first = next(i for i, label in enumerate(item["labels"]) if label != IGNORE_INDEX)
    assert first == len(prompt_ids)
    assert item["input_ids"][:first] == prompt_ids
    assert item["labels"][first] == mr_ids[0]  # the first supervised token is the MR's first token
    assert tokenizer.decode(item["labels"][first:]) == example.mr + "<|im_end|>"
    assert item["labels"][-1] == tokenizer.convert_tokens_to_ids("<|im_end|>")


def test_collator_pads_with_ignored_labels(tokenizer: PreTrainedTokenizerBase) -> None:
    examples = [
        ViggoExample("Are you a Linux gamer?", "request_attribute(has_linux_release[])"),
        ViggoExample("Do you like PlayStation games like Portal 2?", "suggest(name[Portal 2], platforms[PlayStation])"),
    ]
    dataset, _ = encode_examples(tokenizer, [pair(e) for e in examples], cutoff_len=512)
    batch = CausalLMCollator(tokenizer.pad_token_id)([dataset[0], dataset[1]])
    lengths = [len(dataset[i]["input_ids"]) for i in range(2)]
    short = lengths.index(min(lengths))
    assert batch["input_ids"].shape == (2, max(lengths))
    assert batch["attention_mask"][short].sum().item() == min(lengths)
    assert (batch["labels"][short, min(lengths) :] == IGNORE_INDEX).all()
    assert (batch["input_ids"][short, min(lengths) :] == tokenizer.pad_token_id).all()


def test_too_long_examples_are_dropped(tokenizer: PreTrainedTokenizerBase) -> None:
    example = ViggoExample("Are you a Linux gamer?", "request_attribute(has_linux_release[])")
    dataset, dropped = encode_examples(tokenizer, [pair(example)], cutoff_len=64)
    assert len(dataset) == 0 and dropped == 1


def test_alpaca_jsonl_is_accepted(tmp_path: Path, tokenizer: PreTrainedTokenizerBase) -> None:
    records = [
        {"instruction": "x", "input": "Are you a Linux gamer?", "output": "request_attribute(has_linux_release[])"}
    ]
    path = tmp_path / "train.jsonl"
    path.write_text("\n".join(json.dumps(r) for r in records) + "\n")
    dataset, _ = encode_examples(tokenizer, viggo_pairs(path, "train"), cutoff_len=512)
    assert len(dataset) == 1


def test_masked_spans_carry_no_loss(tokenizer: PreTrainedTokenizerBase) -> None:
    response = '{"Bank of England": "organization", "Bank": "none", "England": "none"}'
    start = response.index('"England": "') + len('"England": "')
    dataset, _ = encode_examples(
        tokenizer, [Pair([{"role": "user", "content": "x"}], response, ((start, start + 4),))], cutoff_len=512
    )
    item = dataset[0]
    kept = [label for label in item["labels"] if label != IGNORE_INDEX]
    assert tokenizer.decode(kept) == response.replace('"England": "none', '"England": "') + "<|im_end|>"
    masked = [i for i, label in enumerate(item["labels"]) if label == IGNORE_INDEX and i >= len(item["labels"]) - 8]
    assert str(tokenizer.decode([item["input_ids"][i] for i in masked])).strip() == "none"  # still in the input
