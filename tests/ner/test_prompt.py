"""The labelling prompt: few-shot messages, rendered with the default model's chat template."""

from __future__ import annotations

import json

from transformers import PreTrainedTokenizerBase

from ner.candidates import propose, unique_texts
from ner.prompt import EXAMPLES, labelling_messages


def _render(tokenizer: PreTrainedTokenizerBase, text: str) -> str:
    names = unique_texts(propose(text), "name")
    rendered = tokenizer.apply_chat_template(
        labelling_messages(text, names), tokenize=False, add_generation_prompt=True
    )
    assert isinstance(rendered, str)
    return rendered


def test_prompt_renders_with_the_chat_template_and_shares_its_prefix(tokenizer: PreTrainedTokenizerBase) -> None:
    first = _render(tokenizer, "Angela Merkel visited Siemens in Erlangen.")
    second = _render(tokenizer, "Tim Cook said Apple will open a campus in Austin.")
    assert first.rstrip().endswith("assistant")
    assert "Candidates: Angela Merkel | Siemens | Erlangen" in first

    # Everything up to the last user message is identical, in text and in tokens.
    prefix = first[: first.rindex("Text: Angela Merkel")]
    assert second.startswith(prefix)
    assert len(prefix) > 0.7 * len(first)
    prefix_ids = tokenizer.encode(prefix, add_special_tokens=False)
    assert tokenizer.encode(first, add_special_tokens=False)[: len(prefix_ids)] == prefix_ids
    assert tokenizer.encode(second, add_special_tokens=False)[: len(prefix_ids)] == prefix_ids


def test_prompt_messages_are_system_examples_then_request() -> None:
    messages = labelling_messages("Tim Cook spoke.", ["Tim Cook"])
    assert [m["role"] for m in messages] == ["system"] + ["user", "assistant"] * len(EXAMPLES) + ["user"]
    assert messages[-1]["content"] == "Text: Tim Cook spoke.\nCandidates: Tim Cook"
    assert json.loads(messages[2]["content"]) == EXAMPLES[0][1]
