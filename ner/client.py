"""The service's entity extraction as a langchain-core Runnable, so it composes into chains.

client = EntityExtractionClient("http://localhost:3000", api_key="...")
client.invoke("Tim Cook visited Berlin.")          # -> response dict
await client.abatch(["...", {"text": "...", "adapter": "ner-lora"}])
"""

from __future__ import annotations

from typing import Any

import httpx
from langchain_core.runnables import Runnable, RunnableConfig
from pydantic import BaseModel, ConfigDict, Field

from ner.schema import Entities, EntitySpan

ExtractionInput = str | dict[str, Any]


class ExtractionResponse(Entities):
    """The service's answer; fields the service adds later are kept, not rejected."""

    model_config = ConfigDict(extra="allow")
    spans: list[EntitySpan] = Field(default_factory=list)
    meta: dict[str, Any] = Field(default_factory=dict)


class ExtractionClientError(RuntimeError):
    def __init__(self, status: int, detail: str) -> None:
        super().__init__(f"entity extraction failed with HTTP {status}: {detail}")
        self.status = status
        self.detail = detail


class EntityExtractionClient(Runnable[ExtractionInput, dict[str, Any] | BaseModel]):
    """POSTs to `{base_url}/extract_entities`; input is a text or a request body with `text`."""

    def __init__(
        self,
        base_url: str,
        *,
        api_key: str | None = None,
        adapter: str | None = None,
        persist: bool = False,
        as_model: bool = False,
        timeout: float = 120.0,
    ) -> None:
        self.url = f"{base_url.rstrip('/')}/extract_entities"
        self.headers = {"Authorization": f"Bearer {api_key}"} if api_key else {}
        self.adapter = adapter
        self.persist = persist
        self.as_model = as_model
        self.timeout = timeout

    def _body(self, value: ExtractionInput) -> dict[str, Any]:
        body: dict[str, Any] = {"text": value} if isinstance(value, str) else dict(value)
        if "text" not in body and "body" not in body:
            raise ValueError("input must be a text or a dict with `text`")
        body.setdefault("persist", self.persist)
        if self.adapter:
            body.setdefault("adapter", self.adapter)
        return body

    def _result(self, response: httpx.Response) -> dict[str, Any] | BaseModel:
        if response.status_code >= 400:
            raise ExtractionClientError(response.status_code, response.text)
        data = response.json()
        return ExtractionResponse.model_validate(data) if self.as_model else data

    def invoke(
        self, input: ExtractionInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> dict[str, Any] | BaseModel:
        with httpx.Client(headers=self.headers, timeout=self.timeout) as client:
            return self._result(client.post(self.url, json=self._body(input)))

    async def ainvoke(
        self, input: ExtractionInput, config: RunnableConfig | None = None, **kwargs: Any
    ) -> dict[str, Any] | BaseModel:
        async with httpx.AsyncClient(headers=self.headers, timeout=self.timeout) as client:
            return self._result(await client.post(self.url, json=self._body(input)))
