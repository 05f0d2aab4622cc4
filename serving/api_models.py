"""Request/response models of the service's own endpoints (the OpenAI /v1 API is vLLM's)."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, Field

from serving.generation import RequestError


class ChatMessage(BaseModel):
    role: Literal["system", "user", "assistant"]
    content: str = Field(min_length=1)


class AdapterRegistration(BaseModel):
    name: str = Field(description="Name to select the adapter by (`adapter` field, OpenAI `model` field).", examples=["viggo"])
    source: str = Field(
        description="Local folder (under adapter_roots), s3://bucket/prefix, or a Hugging Face repo id.",
        examples=["finetune/adapters/viggo-smollm2"],
    )


class AdapterView(BaseModel):
    name: str
    source: str
    rank: int
    base_model: str | None


def error_body(exc: RequestError) -> dict[str, object]:
    """OpenAI's error shape, with `param` naming the offending field."""
    return {"error": {"message": exc.message, "type": "invalid_request_error", "param": exc.field, "code": exc.status}}
