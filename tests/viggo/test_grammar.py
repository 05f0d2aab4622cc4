"""The MR grammar: accepts every corpus MR, refuses what the dataset never has, and its output always parses."""

from __future__ import annotations

import random
from collections.abc import Callable
from pathlib import Path

import pytest
import xgrammar as xgr

from tests.viggo.conftest import matcher_for
from viggo.dataset import load_examples
from viggo.grammar import MR_GRAMMAR, SPAN_ATTRIBUTES, build_grammar, outside_spans, value_spans
from viggo.grounding import OPEN_ATTRIBUTES
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


SENTENCE = "I think Need For Speed: Payback, made by Ghost Games in 2017, is a fun game."


def test_value_spans_are_word_runs_that_cross_no_clause() -> None:
    spans = value_spans(SENTENCE)
    assert {"Need For Speed: Payback", "Payback", "Ghost Games", "I think"} <= set(spans)
    assert not [span for span in spans if "," in span or span.endswith((".", ":"))]
    assert len(spans) == len(set(spans))


@pytest.mark.parametrize(
    ("mr", "accepted"),
    [
        ("inform(name[Need For Speed: Payback], developer[Ghost Games])", True),
        ("inform(name[Need for Speed: Payback], release_year[2017])", True),  # the corpus' casing, not the sentence's
        ("give_opinion(name[Payback], rating[good])", True),
        ("inform(name[Need for Speed: Heat])", False),  # not in the sentence
        ("inform(name[Speed Payback])", False),  # words not next to each other
        ("inform(developer[Payback, made])", False),  # across a comma
    ],
)
def test_span_grammar_takes_open_values_only_from_the_sentence(mr: str, accepted: bool) -> None:
    assert matcher_for(build_grammar(value_spans(SENTENCE)))(mr) is accepted


def test_span_grammar_accepts_the_corpus_mr_of_every_sentence_whose_values_occur_in_it(viggo_data: Path) -> None:
    examples = load_examples(viggo_data, "valid")[:200]
    verbatim = [
        ex
        for ex in examples
        if all(
            value.casefold() in ex.sentence.casefold()
            for attribute, value in MeaningRepresentation.parse(ex.mr).attributes.items()
            if attribute in OPEN_ATTRIBUTES and isinstance(value, str) and attribute != "release_year"
        )
    ]
    assert len(verbatim) > 190
    rejected = [ex.mr for ex in verbatim if not matcher_for(build_grammar(value_spans(ex.sentence)))(ex.mr)]
    assert rejected == []


def _variants(mr: MeaningRepresentation) -> list[MeaningRepresentation]:
    """`mr` and copies with one open value changed: in another case (still from the sentence), with a word
    added or a letter dropped (no longer from it), or left empty as `request_attribute` asks."""
    out = [mr]
    for attribute in SPAN_ATTRIBUTES:
        value = mr.attributes.get(attribute)
        if isinstance(value, str) and value:
            for changed in (value.upper(), value.swapcase(), f"{value} Deluxe", value[:-1]):
                if changed:
                    out.append(MeaningRepresentation(mr.act, {**mr.attributes, attribute: changed}))
    out.append(MeaningRepresentation("request_attribute", {"developer": ""}))
    return out


def test_outside_spans_says_exactly_when_the_span_grammar_refuses_an_mr(viggo_data: Path) -> None:
    """The re-decoding decision stands in for the span grammar: an MR it calls inside must be one the grammar
    accepts (so greedy decoding under it gives the same MR), and one it calls outside one the grammar refuses."""
    verdicts = {True: 0, False: 0}
    for example in load_examples(viggo_data, "valid")[:120]:
        spans = value_spans(example.sentence)
        accepts = matcher_for(build_grammar(spans))
        for mr in _variants(MeaningRepresentation.parse(example.mr)):
            inside = not outside_spans(mr.attributes, spans)
            assert inside is accepts(mr.to_string()), (example.sentence, mr.to_string())
            verdicts[inside] += 1
    assert verdicts[True] > 250 and verdicts[False] > 250


def test_outside_spans_names_the_attributes_and_checks_list_items() -> None:
    spans = value_spans(SENTENCE)
    attributes = {"name": "need for speed: PAYBACK", "developer": "EA", "specifier": "", "rating": "excellent"}
    assert outside_spans(attributes, spans) == ["developer"]  # closed slots and empty values are not spans
    assert outside_spans({"developer": ["Ghost Games", "Criterion"]}, spans) == ["developer"]
    assert outside_spans({"name": "Payback"}, []) == ["name"]
