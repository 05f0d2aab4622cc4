"""ViGGO building blocks without an engine: MR parsing, grammar, metrics, data, prompts."""

from __future__ import annotations

import json
import random
from pathlib import Path

import pytest

from serving import default_model
from serving.paths import VIGGO_DATA
from viggo.dataset import ViggoExample, load_examples, to_alpaca
from viggo.grammar import MR_GRAMMAR
from viggo.metrics import score
from viggo.mr import MeaningRepresentation, MRParseError
from viggo.ontology import ACTS, ATTRIBUTES
from viggo.prompt import FEW_SHOT_EXAMPLES, SYSTEM_INSTRUCTION, build_messages

DATA = VIGGO_DATA
TOKENIZER_DIR = default_model.model_dir()
needs_data = pytest.mark.skipif(not DATA.is_dir(), reason=f"ViGGO data not at {DATA}")


@pytest.fixture(scope="module")
def corpus_mrs() -> list[str]:
    return [example.mr for split in ("train", "valid") for example in load_examples(DATA, split)]


@pytest.fixture(scope="module")
def grammar_matcher_factory():
    xgr = pytest.importorskip("xgrammar")
    compiled = xgr.GrammarCompiler(xgr.TokenizerInfo([])).compile_grammar(xgr.Grammar.from_ebnf(MR_GRAMMAR))

    def accepts(text: str) -> bool:
        matcher = xgr.GrammarMatcher(compiled, terminate_without_stop_token=True)
        return matcher.accept_string(text) and matcher.is_terminated()

    return accepts


# --- MR ----------------------------------------------------------------------------------------


@needs_data
def test_round_trip_every_corpus_mr(corpus_mrs: list[str]) -> None:
    assert len(corpus_mrs) == 5103 + 714
    failures = [mr for mr in corpus_mrs if MeaningRepresentation.parse(mr).to_string() != mr]
    assert failures == []


def test_parse_lists_and_awkward_values() -> None:
    text = (
        "inform(name[Dirt: Showdown], exp_release_date[December 1, 2018], developer[Spectrum HoloByte, Inc.], "
        "esrb[E 10+ (for Everyone 10 and Older)], genres[driving/racing, sport], platforms[PC])"
    )
    mr = MeaningRepresentation.parse(text)
    assert mr.act == "inform"
    assert list(mr.attributes) == ["name", "exp_release_date", "developer", "esrb", "genres", "platforms"]
    assert mr.attributes["genres"] == ["driving/racing", "sport"]
    assert mr.attributes["platforms"] == ["PC"]
    assert mr.attributes["developer"] == "Spectrum HoloByte, Inc."  # a comma, but not a list attribute
    assert mr.attributes["exp_release_date"] == "December 1, 2018"
    assert mr.to_string() == text
    assert mr.slots() == {
        ("name", "Dirt: Showdown"),
        ("exp_release_date", "December 1, 2018"),
        ("developer", "Spectrum HoloByte, Inc."),
        ("esrb", "E 10+ (for Everyone 10 and Older)"),
        ("genres", "driving/racing"),
        ("genres", "sport"),
        ("platforms", "PC"),
    }


def test_parse_empty_value_of_request_attribute() -> None:
    mr = MeaningRepresentation.parse("request_attribute(player_perspective[])")
    assert mr.attributes == {"player_perspective": ""}
    assert mr.to_string() == "request_attribute(player_perspective[])"


@pytest.mark.parametrize(
    "text",
    [
        "",
        "inform",
        "inform()",
        "inform(name[Halo]",
        "greet(name[Halo])",
        "inform(title[Halo])",
        "inform(name[Halo], name[Halo 2])",
        "inform(name[Halo],rating[good])",
        "inform(name[Halo] rating[good])",
        "inform(name[Ha[lo]])",
        "inform(name[])",
        "inform(name[Halo]) trailing",
        " inform(name[Halo])",
    ],
)
def test_parse_rejects_malformed(text: str) -> None:
    with pytest.raises(MRParseError):
        MeaningRepresentation.parse(text)


# --- grammar -----------------------------------------------------------------------------------


@needs_data
def test_grammar_accepts_every_corpus_mr(corpus_mrs: list[str], grammar_matcher_factory) -> None:
    rejected = [mr for mr in corpus_mrs if not grammar_matcher_factory(mr)]
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
def test_grammar_rejects(text: str, grammar_matcher_factory) -> None:
    assert not grammar_matcher_factory(text)


def test_parse_never_fails_on_grammar_output() -> None:
    """Random walks through the grammar, one character at a time, always parse."""
    xgr = pytest.importorskip("xgrammar")
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


# --- metrics -----------------------------------------------------------------------------------


def test_metrics_hand_made() -> None:
    references = [
        "inform(name[Halo], genres[shooter, action], rating[good])",
        "request(specifier[scary])",
        "confirm(name[Doom], platforms[PC])",
        "request_attribute(esrb[])",
    ]
    predictions = [
        "inform(name[Halo], genres[shooter, action], rating[good])",  # exact: 4 slots right
        "request(specifier[fun])",  # act right, 1 wrong slot
        "suggest(name[Doom], platforms[PC, Xbox])",  # act wrong, 2 of 3 slots right
        None,  # request failed: no parse, no slots
    ]
    scores = score(predictions, references)
    assert scores.count == 4
    assert scores.exact_match == pytest.approx(1 / 4)
    assert scores.act_accuracy == pytest.approx(2 / 4)
    assert scores.parse_rate == pytest.approx(3 / 4)
    # predicted slots 4 + 1 + 3 = 8, correct 4 + 0 + 2 = 6; reference slots 4 + 1 + 2 + 1 = 8
    assert scores.slot_precision == pytest.approx(6 / 8)
    assert scores.slot_recall == pytest.approx(6 / 8)
    assert scores.slot_f1 == pytest.approx(6 / 8)


def test_metrics_unparseable_and_order() -> None:
    references = ["inform(name[Halo], rating[good])", "inform(name[Halo], rating[good])"]
    scores = score(["inform(rating[good], name[Halo])", "garbage"], references)
    assert scores.exact_match == 0  # strict string equality: slot order matters
    assert scores.slot_recall == pytest.approx(2 / 4)
    assert scores.slot_precision == 1.0
    assert scores.parse_rate == 0.5
    with pytest.raises(ValueError):
        score(["inform(name[Halo])"], references)


def test_metrics_empty() -> None:
    assert score([], []).exact_match == 0.0


# --- dataset -----------------------------------------------------------------------------------


@needs_data
def test_load_csv_folder_and_file() -> None:
    valid = load_examples(DATA)
    assert len(valid) == 714
    assert all(isinstance(example, ViggoExample) for example in valid)
    assert valid[0].mr.endswith(")") and valid[0].sentence
    assert len(load_examples(DATA / "train.csv")) == 5103
    assert len(load_examples(str(DATA), split="train")) == 5103


def test_load_alpaca_jsonl(tmp_path: Path) -> None:
    examples = [
        ViggoExample("Halo is a good shooter.", "inform(name[Halo], rating[good], genres[shooter])"),
        ViggoExample("Do you like Mac games?", "request_attribute(has_mac_release[])"),
    ]
    records = to_alpaca(examples)
    assert records[0] == {
        "instruction": SYSTEM_INSTRUCTION,
        "input": "Halo is a good shooter.",
        "output": "inform(name[Halo], rating[good], genres[shooter])",
    }
    path = tmp_path / "valid.jsonl"
    path.write_text("\n".join(json.dumps(record) for record in records) + "\n\n")
    assert load_examples(path) == examples
    assert load_examples(tmp_path, split="valid") == examples


def test_load_errors(tmp_path: Path) -> None:
    with pytest.raises(FileNotFoundError):
        load_examples(tmp_path, split="test")
    with pytest.raises(FileNotFoundError):
        load_examples(tmp_path / "nowhere.csv")
    bad_csv = tmp_path / "bad.csv"
    bad_csv.write_text("meaning,sentence\nx,y\n")
    with pytest.raises(ValueError, match="mr"):
        load_examples(bad_csv)
    bad_jsonl = tmp_path / "bad.jsonl"
    bad_jsonl.write_text(json.dumps({"instruction": "x", "text": "y"}) + "\n")
    with pytest.raises(ValueError, match="input"):
        load_examples(bad_jsonl)


def test_hub_needs_datasets_or_network() -> None:
    # Offline (or without `datasets`) the error says what is missing instead of a bare traceback.
    with pytest.raises(RuntimeError, match="datasets|network"):
        load_examples("GEM/viggo")


# --- prompt ------------------------------------------------------------------------------------


def test_system_instruction_lists_the_ontology() -> None:
    for name in ACTS + ATTRIBUTES:
        assert f"'{name}'" in SYSTEM_INSTRUCTION
    assert "only the meaning representation" in SYSTEM_INSTRUCTION


@needs_data
def test_few_shot_examples_come_from_train_one_per_act() -> None:
    train = set(load_examples(DATA, "train"))
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


@pytest.mark.skipif(not TOKENIZER_DIR.is_dir(), reason="default model not converted yet")
def test_chat_template_renders_and_shares_prefix() -> None:
    from transformers import AutoTokenizer

    tokenizer = AutoTokenizer.from_pretrained(TOKENIZER_DIR)

    def render(sentence: str) -> list[int]:
        text = tokenizer.apply_chat_template(
            build_messages(sentence, FEW_SHOT_EXAMPLES), tokenize=False, add_generation_prompt=True
        )
        assert SYSTEM_INSTRUCTION in text and FEW_SHOT_EXAMPLES[-1].mr in text
        assert text.rstrip().endswith("assistant")  # generation prompt opens the answer turn
        return tokenizer.encode(text, add_special_tokens=False)

    first, second = render("Is Halo fun?"), render("Tell me about Doom on PC.")
    shared = next(i for i, (a, b) in enumerate(zip(first, second)) if a != b)
    # Everything up to the final user turn is common: that is what the prefix cache reuses.
    assert shared > 0.9 * min(len(first), len(second))


# --- predictor (with a stand-in for the engine) -------------------------------------------------


class FakeGenerator:
    """Records what the predictor asks of the engine and answers with canned MR text."""

    def __init__(self, answers: dict[str, str]) -> None:
        from serving.generation import LocalAdapters

        self.answers = answers
        self.adapters = LocalAdapters()
        self.calls: list[tuple[list[dict[str, str]], object, str | None]] = []
        self._messages: dict[int, list[dict[str, str]]] = {}

    def chat_text(self, messages):
        key = len(self._messages)
        self._messages[key] = list(messages)
        return str(key)

    def encode(self, text: str) -> list[int]:
        return [int(text)]

    def check_length(self, prompt_ids, max_tokens, field="max_tokens") -> None:
        pass

    async def complete(self, prompt_ids, params, *, adapter=None):
        from types import SimpleNamespace

        messages = self._messages[prompt_ids[0]]
        self.calls.append((messages, params, adapter))
        text = self.answers[messages[-1]["content"]]
        return SimpleNamespace(text=text, finish_reason="stop" if text.endswith(")") else "length")


def test_predictor_constrained_greedy_and_few_shot_choice() -> None:
    import asyncio

    from serving.errors import RequestError
    from viggo.predictor import ViggoOutputError, ViggoPrediction, ViggoPredictor

    fake = FakeGenerator({"Halo is good.": "inform(name[Halo], rating[good])", "Cut off": "inform(name[Ha"})
    predictor = ViggoPredictor(fake, max_tokens=64)  # type: ignore[arg-type]

    prediction = asyncio.run(predictor.predict("  Halo is good. "))
    assert prediction == ViggoPrediction(mr="inform(name[Halo], rating[good])", act="inform",
                                         attributes={"name": "Halo", "rating": "good"})  # fmt: skip
    messages, params, adapter = fake.calls[-1]
    assert params.temperature == 0 and params.max_tokens == 64
    assert params.structured_outputs.grammar == MR_GRAMMAR
    assert len(messages) == 2 + 2 * len(FEW_SHOT_EXAMPLES) and adapter is None

    results = asyncio.run(predictor.predict_many(["Halo is good.", "Cut off"], progress=False, few_shot=False))
    assert results[0].mr == "inform(name[Halo], rating[good])"
    assert isinstance(results[1], ViggoOutputError) and "max_tokens" in str(results[1])
    assert all(len(call[0]) == 2 for call in fake.calls[-2:])

    for sentence in ("", "   "):
        with pytest.raises(RequestError) as error:
            asyncio.run(predictor.predict(sentence))
        assert error.value.field == "sentence"
    with pytest.raises(RequestError) as error:  # no adapters: unknown adapter, before any generation
        asyncio.run(predictor.predict_many(["Halo is good."], adapter="tuned", progress=False))
    assert error.value.field == "adapter"


def test_predictor_skips_few_shot_for_an_adapter() -> None:
    import asyncio
    from types import SimpleNamespace

    from viggo.predictor import ViggoPredictor

    fake = FakeGenerator({"Halo is good.": "inform(name[Halo], rating[good])"})
    fake.adapters = SimpleNamespace(resolve=lambda name: None)  # type: ignore[assignment]
    predictor = ViggoPredictor(fake)  # type: ignore[arg-type]
    asyncio.run(predictor.predict("Halo is good.", adapter="tuned"))
    messages, _params, adapter = fake.calls[-1]
    assert adapter == "tuned" and [m["role"] for m in messages] == ["system", "user"]
    asyncio.run(predictor.predict("Halo is good.", adapter="tuned", few_shot=True))
    assert len(fake.calls[-1][0]) == 2 + 2 * len(FEW_SHOT_EXAMPLES)


def test_grammar_caps_list_length(grammar_matcher_factory) -> None:
    from viggo.ontology import MAX_LIST_ITEMS

    def platforms(count: int) -> str:
        return f"inform(name[Halo], platforms[{', '.join(['PC'] * count)}])"

    assert grammar_matcher_factory(platforms(MAX_LIST_ITEMS))
    assert not grammar_matcher_factory(platforms(MAX_LIST_ITEMS + 1))
