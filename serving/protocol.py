"""Wire shapes of the service's own endpoints (the OpenAI /v1 API's are vLLM's); the logic is elsewhere."""

from __future__ import annotations

from typing import TYPE_CHECKING, Annotated, Literal

from annotated_types import Ge, Gt, Le
from pydantic import BaseModel, Field

if TYPE_CHECKING:
    from serving.adapters import AdapterInfo

Temperature = Annotated[float, Ge(0.0), Le(2.0)]
TopP = Annotated[float, Gt(0.0), Le(1.0)]
# vLLM hands the seed to torch, which takes a 64-bit integer (its OpenAI API has the same bound).
Seed = Annotated[int | None, Ge(-(2**63)), Le(2**63 - 1)]
AdapterName = Annotated[
    str | None,
    Field(
        description="Name of a LoRA adapter (registered, or in the adapter store). Default: the endpoint's own "
        "(NER: `ner_adapter`, ViGGO: `viggo_adapter`; with the default model the shipped `ner` and `viggo`), else "
        "the base model; the served model's name asks for the base model."
    ),
]
Persist = Annotated[
    bool | None, Field(description="Store the result under results_uri; default: the service's persist_results.")
]
Prompt = Annotated[
    str, Field(description="Raw text to continue, no chat template (or use `messages`).", examples=["Once upon a time"])
]


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1)


class AdapterRegistration(BaseModel):
    name: str = Field(
        description="Name to select the adapter by (`adapter` field, OpenAI `model` field).", examples=["viggo"]
    )
    source: str = Field(
        description="Local folder (under adapter_roots), s3://bucket/prefix, or a Hugging Face repo id.",
        examples=["finetune/adapters/viggo-smollm2"],
    )


class AdapterView(BaseModel):
    name: str
    source: str
    rank: int
    base_model: str | None

    @classmethod
    def of(cls, info: AdapterInfo) -> AdapterView:
        return cls(name=info.name, source=info.source, rank=info.rank, base_model=info.base_model)


class ErrorDetail(BaseModel):
    message: str
    type: str = Field(description="OpenAI error type, e.g. invalid_request_error, rate_limit_exceeded.")
    param: str | None = Field(description="The request field at fault, e.g. `items[0].text`; null if none.")
    code: int = Field(description="The HTTP status again.")


class ErrorBody(BaseModel):
    """Every error the service answers (OpenAI's shape; written by serving/errors.py's `error_body`)."""

    error: ErrorDetail
