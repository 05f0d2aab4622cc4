"""The labelling prompt: few-shot messages, rendered with the default model's chat template."""

from __future__ import annotations

import json

import pytest
from langchain_core.prompts import ChatPromptTemplate
from transformers import PreTrainedTokenizerBase

from ner.candidates import propose, unique_texts
from ner.prompt import (
    EXAMPLES,
    SYSTEM,
    TEMPLATE,
    TUNED_SYSTEM,
    labelling_messages,
    messages_for,
    request_text,
    template,
    to_chat,
)


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


@pytest.mark.parametrize("prompt", [TEMPLATE, template(TUNED_SYSTEM, ())], ids=["few-shot", "tuned"])
def test_messages_are_what_langchain_formats_for_the_whole_template(prompt: ChatPromptTemplate) -> None:
    """The fixed part is formatted once; every request still gets exactly the template's messages."""
    messages = messages_for(prompt)
    for text, names in [
        ("Tim Cook spoke.", ["Tim Cook"]),
        ("Zoë Çelik flew from Zürich to 東京 with {braces} and {request}.", ["Zoë Çelik", "Zürich", "東京"]),
        ("Nothing here.", []),
    ]:
        assert messages(text, names) == to_chat(prompt.format_messages(request=request_text(text, names)))


def test_a_caller_changing_its_messages_leaves_the_next_prompt_alone() -> None:
    first = labelling_messages("Tim Cook spoke.", ["Tim Cook"])
    first[0]["content"] = "changed"
    assert labelling_messages("Tim Cook spoke.", ["Tim Cook"])[0]["content"] == SYSTEM


def test_a_template_whose_request_is_not_its_last_message_is_refused() -> None:
    swapped = ChatPromptTemplate.from_messages([("human", "{request}"), ("system", "Label the names.")])
    with pytest.raises(ValueError, match="must end with the human message"):
        messages_for(swapped)
