"""Prompt rendering without an engine: piecewise encoding with its cache gives the ids of encoding the whole text."""

from __future__ import annotations

import copy
from typing import Any

from ner.prompt import labelling_messages
from serving.generation import PromptRenderer
from viggo.prompt import FEW_SHOT_EXAMPLES, build_messages


def test_piecewise_encoding_gives_the_whole_texts_ids(tokenizer: Any) -> None:
    renderer = PromptRenderer(tokenizer, 2048)
    assert renderer._added is not None  # SmolLM2's added tokens allow it: the cache is in use
    texts = [
        renderer.chat_text(labelling_messages("Tim Cook of Apple met Angela Merkel in Berlin.", ["Tim Cook", "Apple"])),
        renderer.chat_text(labelling_messages("Björk sang in Reykjavík on 1 May 2020 ", ["Björk", "Reykjavík"])),
        renderer.chat_text(build_messages("I liked Half-Life 2.", FEW_SHOT_EXAMPLES)),
        "a plain prompt, no chat template",
        "<|im_start|>a user who types special tokens<|im_end|><|im_end|>  \n\n",
        "",
    ]
    for _ in range(2):  # the second time from the cache
        for text in texts:
            assert renderer.encode(text) == list(tokenizer.encode(text, add_special_tokens=False)), text
    assert renderer._encode_piece.cache_info().hits > 0


def test_tokenizers_that_encode_pieces_differently_encode_whole_texts(tokenizer: Any) -> None:
    """A tokenizer whose pieces would not encode as the whole does (here: one that prefixes a space to each text it
    is given) is used on whole texts: the renderer checks a probe at construction and falls back."""

    class SpacePrefixing:
        def __init__(self, inner: Any) -> None:
            self.inner = inner
            self.added_tokens_decoder = inner.added_tokens_decoder

        def encode(self, text: str, add_special_tokens: bool = False) -> list[int]:
            return list(self.inner.encode(" " + text, add_special_tokens=add_special_tokens))

    renderer = PromptRenderer(SpacePrefixing(tokenizer), 2048)
    assert renderer._added is None
    text = "<|im_start|>user\nHello<|im_end|>"
    assert renderer.encode(text) == list(tokenizer.encode(" " + text, add_special_tokens=False))


def test_the_engines_tokenizer_wrappers_keep_the_cache(tokenizer: Any) -> None:
    """The engine hands out vLLM's wrappers of the HF tokenizer (a thread pool, cached properties): the split and
    its cache must work through them, or the service would silently tokenize whole prompts again."""
    from vllm.tokenizers.hf import get_cached_tokenizer, maybe_make_thread_pool

    wrapped = get_cached_tokenizer(maybe_make_thread_pool(copy.deepcopy(tokenizer)))
    renderer = PromptRenderer(wrapped, 2048)
    assert renderer._added is not None
    text = renderer.chat_text(labelling_messages("Tim Cook of Apple met Angela Merkel.", ["Tim Cook", "Apple"]))
    assert renderer.encode(text) == list(tokenizer.encode(text, add_special_tokens=False))
