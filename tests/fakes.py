"""The one stand-in for the engine in fast tests: a `TextGenerator` that replies from a script.

Only what sits behind the engine is scripted; the code under test (the NER extractor, the ViGGO
predictor) runs as in the service, with the real length check and real adapter resolution.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, cast

from serving.generation import AdapterResolver, Generator, LocalAdapters

if TYPE_CHECKING:
    from vllm import SamplingParams


@dataclass(frozen=True)
class Completion:
    """A scripted generation: its text and why it ended ("length": cut by the token budget)."""

    text: str
    finish_reason: str | None = "stop"


@dataclass(frozen=True)
class Call:
    messages: list[dict[str, str]]
    params: SamplingParams
    adapter: str | None


class ScriptedGenerator:
    """Replies with `replies` in order, or with `answers[last message's content]`, and records every call.

    Prompts are "tokenised" one token per character, so a test can size `max_model_len` against them.
    """

    def __init__(
        self,
        *replies: Completion,
        answers: Mapping[str, Completion] | None = None,
        max_model_len: int = 1 << 16,
        adapters: AdapterResolver | None = None,
    ) -> None:
        self.replies = list(replies)
        self.answers = dict(answers or {})
        self.max_model_len = max_model_len
        self.adapters: AdapterResolver = adapters or LocalAdapters()
        self.calls: list[Call] = []
        self._rendered: dict[str, list[dict[str, str]]] = {}

    def chat_text(self, messages: Sequence[dict[str, str]]) -> str:
        text = "\n".join(f"<{m['role']}>{m['content']}" for m in messages) + "\n<assistant>"
        self._rendered[text] = list(messages)
        return text

    def encode(self, text: str) -> list[int]:
        return [ord(char) for char in text]

    def check_length(self, prompt_ids: Sequence[int], max_tokens: int, field: str = "max_tokens") -> None:
        # The service's own check (it reads only max_model_len): the code under test meets the real error.
        Generator.check_length(cast(Generator, self), prompt_ids, max_tokens, field)

    async def complete(
        self, prompt_ids: Sequence[int], params: SamplingParams, *, adapter: str | None = None
    ) -> Completion:
        self.check_length(prompt_ids, params.max_tokens or 0)
        await self.adapters.resolve(adapter)
        messages = self._rendered["".join(map(chr, prompt_ids))]
        self.calls.append(Call(messages, params, adapter))
        return self.answers[messages[-1]["content"]] if self.answers else self.replies.pop(0)

    def budgets(self) -> list[int | None]:
        """The token budget (`max_tokens`) of every call so far."""
        return [call.params.max_tokens for call in self.calls]
