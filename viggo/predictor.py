"""Sentence -> MR on the shared engine, with grammar-constrained greedy decoding."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

from prometheus_client import Counter
from tqdm.auto import tqdm

from serving.errors import RequestError
from serving.generation import TextGenerator
from viggo.grammar import MR_GRAMMAR, SpanValues, build_grammar, outside_spans, value_spans
from viggo.grounding import ungrounded_attributes
from viggo.mr import MeaningRepresentation, MRParseError
from viggo.prompt import FEW_SHOT_EXAMPLES, build_messages
from viggo.protocol import ViggoPrediction

REDECODED = Counter(
    "viggo_redecoded_answers",
    "/viggo answers decoded again with open-slot values restricted to the sentence's words (viggo_span_values).",
)


class ViggoOutputError(RequestError):
    """The model's output is not an MR; the grammar prevents this unless `max_tokens` cut it short."""

    def __init__(self, text: str, reason: str) -> None:
        super().__init__(f"model output is not a meaning representation ({reason}): {text!r}", field="sentence")
        self.text = text


def _check(sentence: str) -> None:
    if not isinstance(sentence, str) or not sentence.strip():
        raise RequestError("must be a non-empty string", field="sentence")


class ViggoPredictor:
    def __init__(
        self,
        generator: TextGenerator,
        *,
        few_shot: bool = True,
        max_tokens: int = 160,
        span_values: SpanValues = "off",
    ) -> None:
        """`few_shot`: show the base model (no adapter, or the served model's own name) the fixed few-shot
        examples. A fine-tuned adapter learnt the task without them, so its requests skip them unless told otherwise.
        `span_values`: whether and how open-slot values come only from the sentence's words (`SpanValues`)."""
        self.generator = generator
        self.few_shot = few_shot
        self.max_tokens = max_tokens
        self.span_values = span_values

    async def predict(
        self, sentence: str, adapter: str | None = None, *, few_shot: bool | None = None
    ) -> ViggoPrediction:
        _check(sentence)
        base_model = await self.generator.adapters.resolve(adapter) is None
        return await self._generate(sentence, self._prompt_ids(sentence, base_model, few_shot), adapter)

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
        base_model = await self.generator.adapters.resolve(adapter) is None
        prompts = [self._prompt_ids(sentence, base_model, few_shot) for sentence in sentences]
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

    def _prompt_ids(self, sentence: str, base_model: bool, few_shot: bool | None) -> list[int]:
        _check(sentence)
        if few_shot is None:
            few_shot = self.few_shot and base_model
        messages = build_messages(sentence.strip(), FEW_SHOT_EXAMPLES if few_shot else ())
        prompt_ids = self.generator.encode(self.generator.chat_text(messages))
        self.generator.check_length(prompt_ids, self.max_tokens, field="sentence")
        return prompt_ids

    async def _generate(self, sentence: str, prompt_ids: list[int], adapter: str | None) -> ViggoPrediction:
        always = self.span_values == "always"
        mr = await self._decode(prompt_ids, build_grammar(value_spans(sentence)) if always else MR_GRAMMAR, adapter)
        # The model's own answer decides `grounded`: an invented value says the sentence may not be about a game,
        # also when the second decoding below replaces it with words of the sentence.
        ungrounded = ungrounded_attributes(mr, sentence)
        redecoded = False
        if self.span_values == "redecode":
            spans = value_spans(sentence)
            if spans and outside_spans(mr.attributes, spans):
                redecoded = True
                REDECODED.inc()
                mr = await self._decode(prompt_ids, build_grammar(spans), adapter)
        return ViggoPrediction(
            mr=mr.to_string(),
            act=mr.act,
            attributes=mr.attributes,
            grounded=not ungrounded,
            ungrounded=ungrounded,
            redecoded=redecoded,
        )

    async def _decode(self, prompt_ids: list[int], grammar: str, adapter: str | None) -> MeaningRepresentation:
        from vllm import SamplingParams
        from vllm.sampling_params import StructuredOutputsParams

        # A fresh SamplingParams per request: the engine may attach per-request state to it.
        params = SamplingParams(
            temperature=0.0, max_tokens=self.max_tokens, structured_outputs=StructuredOutputsParams(grammar=grammar)
        )
        output = await self.generator.complete(prompt_ids, params, adapter=adapter)
        text = output.text.strip()
        try:
            return MeaningRepresentation.parse(text)
        except MRParseError as error:
            reason = "cut off at max_tokens" if output.finish_reason == "length" else str(error)
            raise ViggoOutputError(text, reason) from error
