"""Entity extraction on the shared engine: propose candidates, let the model label them, ground the result."""

from __future__ import annotations

from ner.candidates import propose, unique_texts
from ner.decoding import labelling_params, parse_labels
from ner.grounding import ground
from ner.prompt import labelling_messages
from ner.schema import EntityType, Extraction
from serving.errors import RequestError
from serving.generation import Generator


class ExtractionError(RequestError):
    """The model could not produce a complete answer within the context; never a partial result."""


class EntityExtractor:
    def __init__(self, generator: Generator, *, max_text_chars: int, max_tokens: int = 256) -> None:
        self.generator = generator
        self.max_text_chars = max_text_chars
        self.max_tokens = max_tokens

    def _validate(self, text: str) -> None:
        if not isinstance(text, str) or not text.strip():
            raise RequestError("must be a non-empty string", field="text")
        if len(text) > self.max_text_chars:
            raise RequestError(
                f"is {len(text)} characters long; the limit is {self.max_text_chars}", field="text", status=413
            )

    async def extract(self, text: str, adapter: str | None = None) -> Extraction:
        self._validate(text)
        candidates = propose(text)
        names = unique_texts(candidates, "name")
        dates: list[tuple[EntityType, str]] = [("date", date) for date in unique_texts(candidates, "date")]
        if not names:  # nothing for the model to decide
            return ground(text, dates).extraction()

        prompt_ids = self.generator.encode(self.generator.chat_text(labelling_messages(text, names)))
        room = self.generator.max_model_len - len(prompt_ids)
        if room <= 0:
            raise RequestError(
                f"the prompt for this text takes {len(prompt_ids)} tokens, more than the model's context of "
                f"{self.generator.max_model_len}; send a shorter text",
                field="text",
                status=413,
            )
        budget, retries = min(self.max_tokens, room), 0
        while True:
            output = await self.generator.complete(prompt_ids, labelling_params(names, budget), adapter=adapter)
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
        labelled = parse_labels(output.text, names)
        return ground(text, labelled + dates).extraction(retries=retries, finish=output.finish_reason)
