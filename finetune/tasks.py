"""Training pairs for the tasks the service serves with an adapter: ViGGO MRs and NER labelling.

Each pair is built from the same code the service runs at inference, so an adapter learns the very prompt it
will be asked: `viggo.prompt.build_messages` for ViGGO; for NER, the service's own candidates
(`ner.candidates.propose`, `ner.resolution.labelling_names`) under the tuned prompt (`ner.prompt.tuned_messages`),
answered with the labels a gold annotation gives them, as the JSON the constrained decoder writes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

from finetune.data import Pair
from ner.decoding import Label

Task = Literal["viggo", "ner"]


def viggo_pairs(source: str | Path, split: str) -> list[Pair]:
    from viggo.dataset import load_examples
    from viggo.prompt import build_messages

    return [Pair(build_messages(example.sentence), example.mr) for example in load_examples(source, split)]


def ner_files(source: str | Path, split: str) -> list[Path]:
    """A .jsonl file, or the files `{split}.jsonl` in a folder (the split may be a glob: `train-*`)."""
    path = Path(source)
    if path.is_file():
        return [path]
    files = sorted(path.glob(f"{split}.jsonl")) if path.is_dir() else []
    if not files:
        raise FileNotFoundError(f"no NER gold file {split}.jsonl in {path} (give a .jsonl file or a folder of them)")
    return files


@dataclass(frozen=True)
class Target:
    names: list[str]
    labels: dict[str, Label]
    unvouched: frozenset[str]

    def answer(self) -> tuple[str, tuple[tuple[int, int], ...]]:
        """The decoder's JSON (`ner.decoding.answer_json`) and the character spans of the unvouched labels."""
        from ner.decoding import answer_json

        pieces, masked, at = [], [], 1
        for name in self.names:
            key = json.dumps(name, ensure_ascii=False) + ": "
            value = json.dumps(self.labels[name])
            if name in self.unvouched:
                masked.append((at + len(key) + 1, at + len(key) + len(value) - 1))  # the label, not its quotes
            pieces.append(key + value)
            at += len(key) + len(value) + 2  # ", "
        text = "{" + ", ".join(pieces) + "}"
        assert text == answer_json(self.labels), "the target must be byte-identical to what the decoder writes"
        return text, tuple(masked)


def labelling_target(text: str, persons: list[str], organizations: list[str], locations: list[str]) -> Target:
    """The label each candidate of `text` should get under this gold annotation.

    A candidate the gold lists under no type is "none". A side of an "X of Y" run that the gold lists whole
    ("England" in "Bank of England") is not vouched for: the service reports the run and ignores the side's
    label, and the gold does not say what the side alone would be, so its label carries no loss.
    """
    from ner.candidates import alternatives, propose
    from ner.grounding import normal
    from ner.resolution import labelling_names

    gold: dict[str, Label] = {}
    for label, strings in (("person", persons), ("organization", organizations), ("location", locations)):
        for string in strings:
            gold.setdefault(normal(string), label)  # type: ignore[arg-type]
    candidates = propose(text)
    names = labelling_names(candidates)
    labels: dict[str, Label] = {name: gold.get(normal(name), "none") for name in names}
    unvouched: set[str] = set()
    for candidate in candidates:
        sides = alternatives(candidate) if candidate.kind == "name" else None
        if sides and labels[candidate.text] != "none":
            unvouched.update(side.text for side in sides if labels[side.text] == "none")
    return Target(names, labels, frozenset(unvouched))


def ner_pairs(source: str | Path, split: str) -> list[Pair]:
    """One pair per gold text with at least one candidate name."""
    from ner.prompt import tuned_messages

    pairs = []
    for path in ner_files(source, split):
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
                text, entities = row["text"], row["entities"]
                target = labelling_target(text, entities["persons"], entities["organizations"], entities["locations"])
            except (ValueError, KeyError, TypeError) as error:
                raise ValueError(f"{path}:{number}: not a gold NER record ({error!r})") from None
            if target.names:
                answer, masked = target.answer()
                pairs.append(Pair(tuned_messages(text, target.names), answer, masked))
    return pairs


def load_pairs(task: Task, source: str | Path, split: str) -> list[Pair]:
    return viggo_pairs(source, split) if task == "viggo" else ner_pairs(source, split)
