"""Entity extraction on the shared engine: propose candidates, let the model label them, ground the result.

A text longer than one part (`ner.documents`) is labelled part by part, all parts at once on the one engine,
and the labels are merged into one decision per string before grounding in the whole text (`ner.resolution`).
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from ner.candidates import (
    SHIPPED_RULES,
    Candidate,
    LabelRules,
    context_labels,
    name_endings,
    propose,
    unique_texts,
)
from ner.decoding import answer_json, label_scores, labelling_params, read_labels
from ner.documents import Part, halves, pack
from ner.grounding import ground, normal
from ner.prompt import Messages, labelling_messages, tuned_messages
from ner.resolution import Labelled, labelling_names, merge, resolve
from ner.schema import EntityType, Extraction
from serving.errors import RequestError
from serving.generation import TextGenerator


class ExtractionError(RequestError):
    """The model could not produce a complete answer within the context; never a partial result."""


class _PromptTooLong(Exception):
    """A part's prompt leaves no room for the answer: the part is labelled in halves instead."""

    def __init__(self, tokens: int) -> None:
        super().__init__(tokens)
        self.tokens = tokens


@dataclass
class _Labelled:
    labels: dict[str, Labelled] = field(default_factory=dict)
    retries: int = 0
    finish: str | None = None


class EntityExtractor:
    def __init__(
        self,
        generator: TextGenerator,
        *,
        max_text_chars: int,
        max_tokens: int = 256,
        part_tokens: int = 256,
        messages: Messages = labelling_messages,
        rules: LabelRules = SHIPPED_RULES,
        labelling_adapter: str | None = None,
    ) -> None:
        """`part_tokens`: the most tokens of text labelled in one prompt (less when the context is short);
        `messages`: the labelling prompt (`ner.prompt`; experiments compare others); `rules`: which rules
        narrow a name's labels before the model chooses (experiments measure them on and off);
        `labelling_adapter`: a tuned labelling adapter (`finetune.tasks`) used when a request names none, and
        asked with the short prompt it was trained on (`ner.prompt.tuned_messages`) whenever it is used."""
        self.generator = generator
        self.messages = messages
        self.labelling_adapter = labelling_adapter
        self.rules = rules
        self.max_text_chars = max_text_chars
        self.max_tokens = max_tokens
        self.part_tokens = part_tokens
        # The prompt without text or candidates: what every part's prompt costs before its own text.
        self._fixed_tokens = len(generator.encode(generator.chat_text(messages("", []))))

    def _validate(self, text: str) -> None:
        if not isinstance(text, str) or not text.strip():
            raise RequestError("must be a non-empty string", field="text")
        if len(text) > self.max_text_chars:
            raise RequestError(
                f"is {len(text)} characters long; the limit is {self.max_text_chars}", field="text", status=413
            )

    def _too_long(self, tokens: int) -> RequestError:
        return RequestError(
            f"the prompt for this text takes {tokens} tokens, more than the model's context of "
            f"{self.generator.max_model_len}; send a shorter text",
            field="text",
            status=413,
        )

    def part_budget(self) -> int:
        """Tokens of text per part: the prompt repeats a part's names as candidates and the answer again as
        JSON keys, so a quarter of what the fixed prompt leaves keeps room for both."""
        return max(1, min(self.part_tokens, (self.generator.max_model_len - self._fixed_tokens) // 4))

    def parts(self, text: str) -> list[Part]:
        return pack(text, lambda piece: len(self.generator.encode(piece)), self.part_budget())

    async def extract(self, text: str, adapter: str | None = None, min_score: float | None = None) -> Extraction:
        self._validate(text)
        if self._fixed_tokens >= self.generator.max_model_len:
            raise self._too_long(self._fixed_tokens)
        candidates = propose(text)  # of the whole document: its dates, and the longer names parts may lack
        # A surname alone in one part may be a person named in full in another.
        endings = name_endings(candidates)
        adapter = adapter or self.labelling_adapter
        messages = tuned_messages if adapter is not None and adapter == self.labelling_adapter else self.messages
        parts = self.parts(text)
        # A text that is one part (most requests: a sentence) has its candidates proposed once, not twice.
        known = candidates if parts == [Part(0, len(text))] else None
        labelled = await asyncio.gather(
            *(self._label_part(text, part, endings, adapter, messages, known) for part in parts)
        )
        done = [part for group in labelled for part in group]
        decided = merge((part.labels for part in done), surname_persons=self.rules.surname_persons)
        dates: list[tuple[EntityType, str]] = [("date", date) for date in unique_texts(candidates, "date")]
        scores = {normal(d.surface): d.score for d in decided} | {normal(date): 1.0 for _, date in dates}
        grounded = ground(text, [(d.type, d.surface) for d in decided] + dates, scores)
        finishes = [part.finish for part in done if part.finish is not None]
        return grounded.above(min_score).extraction(
            retries=sum(part.retries for part in done), finish=finishes[-1] if finishes else None
        )

    async def _label_part(
        self,
        text: str,
        part: Part,
        endings: frozenset[str],
        adapter: str | None,
        messages: Messages,
        candidates: list[Candidate] | None = None,
    ) -> list[_Labelled]:
        """Labels for one part (`candidates`: the part's own, where already proposed); a part whose prompt does not
        fit is labelled in halves."""
        try:
            return [await self._label(part.of(text), endings, adapter, messages, candidates)]
        except _PromptTooLong as error:
            pieces = halves(text, part)
            if len(pieces) < 2:
                raise self._too_long(error.tokens) from None
            groups = await asyncio.gather(
                *(self._label_part(text, piece, endings, adapter, messages) for piece in pieces)
            )
            return [labelled for group in groups for labelled in group]

    async def _label(
        self,
        text: str,
        endings: frozenset[str],
        adapter: str | None,
        messages: Messages,
        candidates: list[Candidate] | None = None,
    ) -> _Labelled:
        candidates = propose(text) if candidates is None else candidates
        names = labelling_names(candidates)
        if not names:  # nothing for the model to decide
            return _Labelled()
        prompt_ids = self.generator.encode(self.generator.chat_text(messages(text, names)))
        room = self.generator.max_model_len - len(prompt_ids)
        if room <= 0:
            raise _PromptTooLong(len(prompt_ids))
        # Room for the longest answer the schema allows (every label "organization"): a long part is then
        # generated once, not cut and generated again.
        longest = len(self.generator.encode(answer_json(dict.fromkeys(names, "organization")))) + 8
        budget, retries = min(max(self.max_tokens, longest), room), 0
        while True:
            params = labelling_params(names, budget, context_labels(text, candidates, self.rules, endings))
            output = await self.generator.complete(prompt_ids, params, adapter=adapter)
            if output.finish_reason != "length":
                break
            if budget >= room:
                raise ExtractionError(
                    f"the labels for {len(names)} candidates did not fit in the {budget} tokens left by the "
                    f"model's context of {self.generator.max_model_len}; send a shorter text",
                    field="text",
                )
            # A cut JSON object is never parsed: ask again with more room.
            budget, retries = min(budget * 2, room), retries + 1
        labels = read_labels(output.text, names)
        scores = self._scores(output, len(names))
        by_name = {name: Labelled(labels[name], score) for name, score in zip(names, scores, strict=True)}
        return _Labelled(resolve(candidates, by_name), retries, output.finish_reason)

    def _scores(self, output: Any, count: int) -> Sequence[float | None]:
        """Each label's probability, in name order, when the engine returned log-probabilities."""
        logprobs = getattr(output, "logprobs", None)
        tokenizer = getattr(self.generator, "tokenizer", None)
        if not logprobs or tokenizer is None:
            return [None] * count

        def decode(ids: Sequence[int]) -> str:
            return str(tokenizer.decode(list(ids), skip_special_tokens=True, clean_up_tokenization_spaces=False))

        scores = label_scores(output.text, output.token_ids, logprobs, decode)
        return scores if len(scores) == count else [None] * count
