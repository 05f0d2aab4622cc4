"""The MR grammar: accepts every corpus MR, refuses what the dataset never has, and its output always parses."""

from __future__ import annotations

import random
from collections.abc import Callable

import pytest
import xgrammar as xgr

from viggo.grammar import MR_GRAMMAR
from viggo.mr import MeaningRepresentation
from viggo.ontology import MAX_LIST_ITEMS


def test_grammar_accepts_every_corpus_mr(corpus_mrs: list[str], grammar_accepts: Callable[[str], bool]) -> None:
    rejected = [mr for mr in corpus_mrs if not grammar_accepts(mr)]
    assert rejected == []


@pytest.mark.parametrize(
    "text",
    [
        "inform(name[Halo], name[Halo 2])",  # repeated attribute
        "inform(rating[good], name[Halo])",  # out of the corpus' order
        "inform()",
        "inform(name[])",  # empty value outside request_attribute
        "request_attribute(esrb[], rating[])",
        "request_attribute(esrb[T (for Teen)])",
        "inform(name[Halo], rating[great])",  # not in the closed vocabulary
        "inform(name[ Halo])",
        "inform(name[Halo  2])",
        "inform(release_year[20111])",
        "chat(name[Halo])",
        "inform(name[Halo]) ",
    ],
)
def test_grammar_rejects(text: str, grammar_accepts: Callable[[str], bool]) -> None:
    assert not grammar_accepts(text)


def test_grammar_caps_list_length(grammar_accepts: Callable[[str], bool]) -> None:
    def platforms(count: int) -> str:
        return f"inform(name[Halo], platforms[{', '.join(['PC'] * count)}])"

    assert grammar_accepts(platforms(MAX_LIST_ITEMS))
    assert not grammar_accepts(platforms(MAX_LIST_ITEMS + 1))


def test_parse_never_fails_on_grammar_output() -> None:
    """Random walks through the grammar, one character at a time, always parse."""
    vocab = [chr(code) for code in range(32, 127)] + ["é", "</s>"]
    info = xgr.TokenizerInfo(vocab, stop_token_ids=[len(vocab) - 1])
    compiled = xgr.GrammarCompiler(info).compile_grammar(xgr.Grammar.from_ebnf(MR_GRAMMAR))
    closers = {vocab.index(c) for c in "])"} | {len(vocab) - 1}
    rng = random.Random(0)
    produced = 0
    for _ in range(150):
        matcher = xgr.GrammarMatcher(compiled)
        bitmask = xgr.allocate_token_bitmask(1, info.vocab_size)
        text = ""
        for _step in range(400):
            matcher.fill_next_token_bitmask(bitmask)
            words = bitmask[0].tolist()
            allowed = [token for token in range(len(vocab)) if (words[token // 32] >> (token % 32)) & 1]
            ending = [token for token in allowed if token in closers]
            token = rng.choice(ending) if ending and rng.random() < 0.3 else rng.choice(allowed)
            assert matcher.accept_token(token)
            if token == len(vocab) - 1:
                break
            text += vocab[token]
        else:
            continue
        produced += 1
        assert MeaningRepresentation.parse(text).to_string() == text
    assert produced > 100
