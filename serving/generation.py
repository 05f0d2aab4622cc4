"""Text generation on the shared engine: prompt rendering, length checks, adapters, abort on cancel.

Every feature (streaming /generate, NER, ViGGO) goes through `Generator`, so prompts are always
rendered with the model's own chat template and an abandoned request never keeps the engine busy.
"""

from __future__ import annotations

import functools
import re
import uuid
from collections.abc import AsyncGenerator, AsyncIterator, Mapping, Sequence
from contextvars import ContextVar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from serving.errors import NotFoundError, RequestError, UnavailableError

if TYPE_CHECKING:
    from vllm import CompletionOutput, RequestOutput, SamplingParams
    from vllm.lora.request import LoRARequest
    from vllm.v1.engine.async_llm import AsyncLLM

    from serving.protocol import ChatMessage


# Engine priority of the requests made in this context (lower runs first, under vLLM's `priority` scheduling
# policy). Extraction jobs lower theirs so interactive requests keep their latency; a context variable, so the
# NER and ViGGO code between a job and the engine need not carry it.
ENGINE_PRIORITY: ContextVar[int] = ContextVar("engine_priority", default=0)


class AdapterResolver(Protocol):
    # Async: resolving a name may load the adapter on first use (serving/adapters.py).
    async def resolve(self, name: str | None) -> LoRARequest | None: ...


class Completion(Protocol):
    """What a feature reads of a finished generation (vLLM's `CompletionOutput` has these)."""

    @property
    def text(self) -> str: ...

    @property
    def finish_reason(self) -> str | None: ...


class TextGenerator(Protocol):
    """What NER and ViGGO need of the engine: `Generator` on the real one; tests script their own."""

    max_model_len: int
    adapters: AdapterResolver

    def chat_text(self, messages: Sequence[dict[str, str]]) -> str: ...

    def encode(self, text: str) -> list[int]: ...

    def check_length(self, prompt_ids: Sequence[int], max_tokens: int, field: str = "max_tokens") -> None: ...

    async def complete(
        self, prompt_ids: Sequence[int], params: SamplingParams, *, adapter: str | None = None
    ) -> Completion: ...


class StreamCut(BaseException):
    """A text stream that broke off after its response had started (drain deadline, engine failure).

    A BaseException, because BentoML's stream wrapper catches every Exception, logs it and ends the response
    like a complete one; this one reaches uvicorn, which closes the connection without the final chunk, so
    the caller's HTTP client raises (httpx: RemoteProtocolError) instead of taking partial text for an answer.
    """


class LocalAdapters:
    """Adapters given by folder to an in-process engine (CLIs, scripts); the service uses AdapterRegistry."""

    def __init__(self, folders: Mapping[str, str | Path] | None = None) -> None:
        from vllm.lora.request import LoRARequest

        self.requests = {
            name: LoRARequest(name, index, str(Path(folder).expanduser().resolve()))
            for index, (name, folder) in enumerate((folders or {}).items(), start=1)
        }

    async def resolve(self, name: str | None) -> LoRARequest | None:
        if not name:
            return None
        if name not in self.requests:
            raise NotFoundError(f"unknown adapter {name!r}; known: {sorted(self.requests) or 'none'}", field="adapter")
        return self.requests[name]


def _added_token_splitter(added: Sequence[Any]) -> re.Pattern[str] | None:
    """A pattern that splits a text at the tokenizer's added tokens as the tokenizer does, or None where piecewise
    encoding could differ from encoding the whole (a token that strips or matches whole words, or normalizes)."""
    if not added or any(t.lstrip or t.rstrip or t.single_word or t.normalized for t in added):
        return None
    # Longest first, so that a token is never matched by a shorter one it starts with.
    contents = sorted((t.content for t in added), key=len, reverse=True)
    return re.compile("(" + "|".join(map(re.escape, contents)) + ")")


class PromptRenderer:
    """Chat template, tokenization and the context check: what a request costs before the engine sees it.

    Apart from `Generator` so that a benchmark can make the service's exact engine requests without an engine
    (bench/task_baseline.py).
    """

    def __init__(self, tokenizer: Any, max_model_len: int) -> None:
        self.tokenizer = tokenizer
        self.max_model_len = max_model_len
        added = getattr(tokenizer, "added_tokens_decoder", {})
        self._added_ids = {token.content: index for index, token in added.items()}
        self._added = _added_token_splitter(list(added.values()))
        self._encode_piece = functools.lru_cache(maxsize=512)(self._encode_uncached)
        if self._added is not None and not self._piecewise_matches():
            self._added = None  # e.g. a SentencePiece tokenizer that prefixes a space to the first piece only

    def chat_text(self, messages: Sequence[dict[str, str]]) -> str:
        """The prompt text the model's chat template makes of these messages."""
        text = self.tokenizer.apply_chat_template(list(messages), tokenize=False, add_generation_prompt=True)
        assert isinstance(text, str)  # tokenize=False: text, not token ids
        return text

    def encode(self, text: str) -> list[int]:
        """Token ids of `text` (chat templates already carry the special tokens they need).

        The tokenizer cuts a text at its added tokens (<|im_start|>, ...) and encodes the pieces between them
        independently, so the pieces are encoded here one by one, and a piece seen before (a system prompt, a
        few-shot turn: every NER prompt repeats ~1,000 tokens of them) comes from a cache: tokenizing whole
        prompts on the event loop took a third of it at /extract_entities concurrency 256 on an H100
        (bench/results/h100-tasks.md). The ids are those of encoding the whole text (tests/serving/test_generation.py).
        """
        if self._added is None:
            return self._encode_uncached(text)
        ids: list[int] = []
        for index, piece in enumerate(self._added.split(text)):
            if index % 2:  # the splitter's group: an added token
                ids.append(self._added_ids[piece])
            elif piece:
                ids.extend(self._encode_piece(piece))
        return ids

    def _piecewise_matches(self) -> bool:
        tokens = list(self._added_ids)[:2]
        probe = f"Hi{tokens[0]}system\nYou label  names.{tokens[-1]}\n{tokens[0]}user\n Tim Cook, 2019 {tokens[-1]} ok"
        return self.encode(probe) == self._encode_uncached(probe)

    def _encode_uncached(self, text: str) -> list[int]:
        return list(self.tokenizer.encode(text, add_special_tokens=False))

    def check_length(self, prompt_ids: Sequence[int], max_tokens: int, field: str = "max_tokens") -> None:
        if len(prompt_ids) + max_tokens > self.max_model_len:
            raise RequestError(
                f"prompt ({len(prompt_ids)} tokens) + max_tokens ({max_tokens}) exceeds the model's context of "
                f"{self.max_model_len} tokens; shorten the input or lower max_tokens",
                field=field,
                status=400,
            )


class Generator(PromptRenderer):
    def __init__(self, engine: AsyncLLM, max_model_len: int, adapters: AdapterResolver | None = None) -> None:
        super().__init__(engine.get_tokenizer(), max_model_len)
        self.engine = engine
        self.adapters: AdapterResolver = adapters or LocalAdapters()
        # Under the default `fcfs` policy vLLM ignores priorities (and older versions refuse non-zero ones).
        self.priority_scheduling = engine.vllm_config.scheduler_config.policy == "priority"

    def prompt_ids(self, prompt: str, messages: Sequence[ChatMessage] | None) -> list[int]:
        """Token ids of chat `messages` (through the chat template) or else of the raw `prompt`."""
        if messages:
            return self.encode(self.chat_text([m.model_dump() for m in messages]))
        if prompt.strip():
            return self.encode(prompt)
        raise RequestError("give a non-empty `prompt` or a non-empty `messages` list", field="prompt")

    async def text_stream(
        self,
        prompt_ids: list[int],
        params: SamplingParams,
        adapter: str | None,
    ) -> AsyncGenerator[str, None]:
        """Check the request now (so a bad one is answered 4xx before any byte is streamed), then stream text.

        The returned iterator yields the new text of each engine step. If it ends before the engine finished
        the request (drain deadline, engine failure), it raises: an HTTP stream must not end like a complete
        answer.
        """
        self.check_length(prompt_ids, params.max_tokens or 0)
        await self.adapters.resolve(adapter)
        return self._text_pieces(prompt_ids, params, adapter)

    async def _text_pieces(
        self, prompt_ids: list[int], params: SamplingParams, adapter: str | None
    ) -> AsyncGenerator[str, None]:
        from vllm.sampling_params import RequestOutputKind

        # Each output carries only the text that is new since the last one (vLLM merges the steps a slow reader
        # missed): no cumulative text and token list rebuilt by vLLM and re-sliced here for every chunk.
        params.output_kind = RequestOutputKind.DELTA
        sent = 0
        try:
            async for output in self.stream(prompt_ids, params, adapter=adapter):
                text = output.outputs[0].text
                if text:
                    sent += len(text)
                    yield text
        except Exception as exc:
            raise StreamCut(f"the stream was cut after {sent} characters: {exc}") from exc

    async def stream(
        self,
        prompt_ids: Sequence[int],
        params: SamplingParams,
        *,
        adapter: str | None = None,
        request_id: str | None = None,
    ) -> AsyncIterator[RequestOutput]:
        """Yield the engine's outputs (cumulative unless `params.output_kind` asks for deltas, as text streams do, or
        for the final one only, as `complete` does); cancelling the consumer aborts the engine request."""
        self.check_length(prompt_ids, params.max_tokens or 0)
        lora: LoRARequest | None = await self.adapters.resolve(adapter)
        request_id = request_id or uuid.uuid4().hex
        finished = False
        try:
            async for output in self.engine.generate(
                {"prompt_token_ids": list(prompt_ids)},
                params,
                request_id,
                lora_request=lora,
                priority=ENGINE_PRIORITY.get() if self.priority_scheduling else 0,
            ):
                finished = output.finished
                if finished and any(c.finish_reason == "abort" for c in output.outputs):
                    # Cut by the engine (the drain's deadline): partial output must not pass for an answer.
                    raise UnavailableError(
                        "the request was aborted before it finished: this replica is shutting down; retry",
                        retry_after_s=1,
                    )
                yield output
        finally:
            if not finished:
                # vLLM aborts on cancellation too; this also covers a consumer that just stops iterating.
                await self.engine.abort(request_id)

    async def complete(
        self, prompt_ids: Sequence[int], params: SamplingParams, *, adapter: str | None = None
    ) -> CompletionOutput:
        from vllm.sampling_params import RequestOutputKind

        # Only the finished output is used, as in raw vLLM's non-streaming /v1: vLLM then builds no per-step output
        # (cumulative text, token and logprob lists) and wakes this coroutine once, not at every engine step. At
        # concurrency 256 the per-step wake-ups were the task endpoints' largest cost on the event loop (H100 run of
        # 2026-12-06: NER and ViGGO at 0.6-0.7 of raw vLLM with the same engine requests).
        params.output_kind = RequestOutputKind.FINAL_ONLY
        final: Any = None
        async for output in self.stream(prompt_ids, params, adapter=adapter):
            final = output
        return final.outputs[0]
