"""ViGGO fixtures: every corpus MR, and an xgrammar matcher for the MR grammar."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
import xgrammar as xgr

from viggo.dataset import load_examples
from viggo.grammar import MR_GRAMMAR


@pytest.fixture(scope="session")
def corpus_mrs(viggo_data: Path) -> list[str]:
    return [example.mr for split in ("train", "valid") for example in load_examples(viggo_data, split)]


def matcher_for(grammar: str) -> Callable[[str], bool]:
    """Whether xgrammar's matcher for the EBNF `grammar` accepts a whole text."""
    compiled = xgr.GrammarCompiler(xgr.TokenizerInfo([])).compile_grammar(xgr.Grammar.from_ebnf(grammar))

    def accepts(text: str) -> bool:
        matcher = xgr.GrammarMatcher(compiled, terminate_without_stop_token=True)
        return matcher.accept_string(text) and matcher.is_terminated()

    return accepts


@pytest.fixture(scope="session")
def grammar_accepts() -> Callable[[str], bool]:
    return matcher_for(MR_GRAMMAR)
