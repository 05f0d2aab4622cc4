"""The NER endpoints' request/response shapes and what happens per request: validate, extract, time,
persist to `{results_uri}/{id}/named_entities.json`. The service only routes HTTP to `EntityRecords`.
"""

from __future__ import annotations

import asyncio
import time
from typing import Annotated

from pydantic import BaseModel, Field

from ner.extractor import EntityExtractor, ExtractionError
from ner.schema import EntitySpan, Extraction
from serving.generation import RequestError
from serving.results_store import InvalidRecordId, ResultStore, new_record_id, validate_record_id

RESULT_FILE = "named_entities.json"
EXAMPLE_TEXT = "Angela Merkel visited the Siemens plant in Erlangen on 4 March 2019."


class TextSample(BaseModel):
    """One text: `{text, id?}` or the text-sample shape `{id, body}`."""

    text: Annotated[str | None, Field(description="The text to extract entities from.", examples=[EXAMPLE_TEXT])] = None
    body: Annotated[str | None, Field(description="Alternative to `text` (the `{id, body}` text-sample shape).")] = None
    id: Annotated[str | None, Field(description="Record id for the stored result; generated when absent.")] = None

    def content(self, field_prefix: str = "") -> str:
        if self.text is not None and self.body is not None:
            raise RequestError(f"{field_prefix}text", "give either `text` or `body`, not both", 422)
        content = self.text if self.text is not None else self.body
        if content is None:
            raise RequestError(f"{field_prefix}text", "missing: give `text` (or `body` with `id`)", 422)
        return content


class ExtractionMeta(BaseModel):
    model: str
    adapter: str | None
    latency_ms: float
    dropped: int = Field(description="Entities the model produced that do not occur in the text (removed).")
    stored_at: str | None = Field(description="Where the result was persisted; null when `persist` is false.")
    upload_pending: bool = Field(False, description="True while the result waits in the local spool for S3.")


class EntityResult(BaseModel):
    id: str
    persons: list[str]
    organizations: list[str]
    locations: list[str]
    dates: list[str]
    spans: list[EntitySpan]
    meta: ExtractionMeta


class ItemError(BaseModel):
    message: str
    param: str | None
    code: int


class BatchItemResult(BaseModel):
    index: int
    id: str | None
    result: EntityResult | None = None
    error: ItemError | None = None


class EntityRecords:
    def __init__(self, extractor: EntityExtractor, store: ResultStore | None, *, model_name: str, persist_default: bool) -> None:
        self.extractor = extractor
        self.store = store
        self.model_name = model_name
        self.persist_default = persist_default

    async def run(self, sample: TextSample, *, adapter: str | None, persist: bool | None, field_prefix: str = "") -> EntityResult:
        text = sample.content(field_prefix)
        try:
            record_id = validate_record_id(sample.id) if sample.id is not None else new_record_id()
        except InvalidRecordId as exc:
            raise RequestError(f"{field_prefix}id", str(exc), 422) from exc
        started = time.perf_counter()
        try:
            extraction: Extraction = await self.extractor.extract(text, adapter=adapter)
        except RequestError as exc:
            raise RequestError(f"{field_prefix}{exc.field}", exc.message, exc.status) from exc
        except ExtractionError as exc:
            raise RequestError(f"{field_prefix}text", str(exc), 422) from exc
        latency_ms = (time.perf_counter() - started) * 1000
        result = EntityResult(
            id=record_id,
            **extraction.entities().model_dump(),
            spans=extraction.spans,
            meta=ExtractionMeta(model=self.model_name, adapter=adapter, latency_ms=round(latency_ms, 1),
                                dropped=extraction.dropped, stored_at=None),
        )
        if persist if persist is not None else self.persist_default:
            if self.store is None:
                raise RequestError("persist", "this service has no result store configured", 409)
            stored = await self.store.save(record_id, RESULT_FILE, {"text": text, **result.model_dump()})
            result.meta.stored_at, result.meta.upload_pending = stored.uri, stored.pending
        return result

    async def run_batch(self, samples: list[TextSample], *, adapter: str | None, persist: bool | None) -> list[BatchItemResult]:
        """All items at once on the one engine (it batches them); one bad item fails only itself."""

        async def one(index: int, sample: TextSample) -> BatchItemResult:
            try:
                result = await self.run(sample, adapter=adapter, persist=persist, field_prefix=f"items[{index}].")
            except RequestError as exc:
                return BatchItemResult(index=index, id=sample.id, error=ItemError(message=exc.message, param=exc.field, code=exc.status))
            return BatchItemResult(index=index, id=result.id, result=result)

        return list(await asyncio.gather(*(one(i, s) for i, s in enumerate(samples))))
