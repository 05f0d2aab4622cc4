"""Sentence -> MR on the shared engine, with grammar-constrained greedy decoding."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from tqdm.auto import tqdm

from serving.errors import RequestError
from serving.generation import TextGenerator
from viggo.grammar import MR_GRAMMAR, build_grammar, value_spans
from viggo.grounding import ungrounded_attributes
from viggo.mr import MeaningRepresentation, MRParseError
from viggo.prompt import FEW_SHOT_EXAMPLES, build_messages
from viggo.protocol import ViggoPrediction


class ViggoOutputError(RequestError):
    """The model's output is not an MR; the grammar prevents this unless `max_tokens` cut it short."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"model output is not a meaning representation ({reason}): {text!r}", field="sentence")
        self.text = text


class ViggoPredictor:
    def __init__(
        self, generator: TextGenerator, *, few_shot: bool = True, max_tokens: int = 160, span_values: bool = False
    ) -> None:
        """`few_shot`: show the base model the fixed few-shot examples. A fine-tuned adapter learnt
        the task without them, so requests naming an adapter skip them unless told otherwise.
        `span_values`: open-slot values only from the sentence's words (`viggo.grammar.value_spans`)."""
        self.generator = generator
        self.few_shot = few_shot
        self.max_tokens = max_tokens
        self.span_values = span_values

    async def predict(
        self, sentence: str, adapter: str | None = None, *, few_shot: bool | None = None
    ) -> ViggoPrediction:
        return await self._generate(sentence, self._prompt_ids(sentence, adapter, few_shot), adapter)

    async def predict_many(
        self,
        sentences: Sequence[str],
        adapter: str | None = None,
        progress: bool = True,
        *,
        few_shot: bool | None = None,
    ) -> list[ViggoPrediction | ViggoOutputError]:
        """All sentences at once (the engine batches them); an unparseable output is returned in
        its slot rather than raised, so one bad sentence does not lose the others' results."""
        # Reject bad input and unknown adapters before anything reaches the engine.
        await self.generator.adapters.resolve(adapter)
        prompts = [self._prompt_ids(sentence, adapter, few_shot) for sentence in sentences]
        bar = tqdm(total=len(prompts), disable=not progress, desc="viggo", unit="sentence")

        async def one(sentence: str, prompt_ids: list[int]) -> ViggoPrediction | ViggoOutputError:
            try:
                return await self._generate(sentence, prompt_ids, adapter)
            except ViggoOutputError as error:
                return error
            finally:
                bar.update()

        try:
            return await asyncio.gather(*(one(s, p) for s, p in zip(sentences, prompts, strict=True)))
        finally:
            bar.close()

    def _prompt_ids(self, sentence: str, adapter: str | None, few_shot: bool | None) -> list[int]:
        if not isinstance(sentence, str) or not sentence.strip():
            raise RequestError("must be a non-empty string", field="sentence")
        if few_shot is None:
            few_shot = self.few_shot and adapter is None
        messages = build_messages(sentence.strip(), FEW_SHOT_EXAMPLES if few_shot else ())
        prompt_ids = self.generator.encode(self.generator.chat_text(messages))
        self.generator.check_length(prompt_ids, self.max_tokens, field="sentence")
        return prompt_ids

    async def _generate(self, sentence: str, prompt_ids: list[int], adapter: str | None) -> ViggoPrediction:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        # A fresh SamplingParams per request: the engine may attach per-request state to it.
        params = SamplingParams(
            temperature=0.0,
            max_tokens=self.max_tokens,
            structured_outputs=StructuredOutputsParams(
                grammar=build_grammar(value_spans(sentence)) if self.span_values else MR_GRAMMAR
            ),
        )
        output = await self.generator.complete(prompt_ids, params, adapter=adapter)
        text = output.text.strip()
        try:
            mr = MeaningRepresentation.parse(text)
        except MRParseError as error:
            reason = "cut off at max_tokens" if output.finish_reason == "length" else str(error)
            raise ViggoOutputError(text, reason) from error
        ungrounded = ungrounded_attributes(mr, sentence)
        return ViggoPrediction(
            mr=mr.to_string(), act=mr.act, attributes=mr.attributes, grounded=not ungrounded, ungrounded=ungrounded
        )
