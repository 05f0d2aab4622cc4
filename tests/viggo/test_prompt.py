"""The ViGGO prompt: instruction, few-shot examples from train, rendered with the default model's chat template."""

from __future__ import annotations

from pathlib import Path

from transformers import PreTrainedTokenizerBase

from viggo.dataset import load_examples
from viggo.mr import MeaningRepresentation
from viggo.ontology import ACTS, ATTRIBUTES
from viggo.prompt import FEW_SHOT_EXAMPLES, SYSTEM_INSTRUCTION, build_messages


def test_system_instruction_lists_the_ontology() -> None:
    for name in ACTS + ATTRIBUTES:
        assert f"'{name}'" in SYSTEM_INSTRUCTION
    assert "only the meaning representation" in SYSTEM_INSTRUCTION


def test_few_shot_examples_come_from_train_one_per_act(viggo_data: Path) -> None:
    train = set(load_examples(viggo_data, "train"))
    assert all(example in train for example in FEW_SHOT_EXAMPLES)
    acts = [MeaningRepresentation.parse(example.mr).act for example in FEW_SHOT_EXAMPLES]
    assert sorted(acts) == sorted(ACTS)


def test_build_messages() -> None:
    assert build_messages("Is Halo fun?") == [
        {"role": "system", "content": SYSTEM_INSTRUCTION},
        {"role": "user", "content": "Is Halo fun?"},
    ]
    messages = build_messages("Is Halo fun?", FEW_SHOT_EXAMPLES)
    assert messages[0] == {"role": "system", "content": SYSTEM_INSTRUCTION}
    assert len(messages) == 2 + 2 * len(FEW_SHOT_EXAMPLES)
    for index, example in enumerate(FEW_SHOT_EXAMPLES):
        assert messages[1 + 2 * index] == {"role": "user", "content": example.sentence}
        assert messages[2 + 2 * index] == {"role": "assistant", "content": example.mr}
    assert messages[-1] == {"role": "user", "content": "Is Halo fun?"}


def test_chat_template_renders_and_shares_prefix(tokenizer: PreTrainedTokenizerBase) -> None:
    def render(sentence: str) -> list[int]:
        text = tokenizer.apply_chat_template(
            build_messages(sentence, FEW_SHOT_EXAMPLES), tokenize=False, add_generation_prompt=True
        )
        assert isinstance(text, str) and SYSTEM_INSTRUCTION in text and FEW_SHOT_EXAMPLES[-1].mr in text
        assert text.rstrip().endswith("assistant")  # generation prompt opens the answer turn
        return tokenizer.encode(text, add_special_tokens=False)

    first, second = render("Is Halo fun?"), render("Tell me about Doom on PC.")
    shared = next(i for i, (a, b) in enumerate(zip(first, second, strict=False)) if a != b)
    # Everything up to the final user turn is common: that is what the prefix cache reuses.
    assert shared > 0.9 * min(len(first), len(second))
