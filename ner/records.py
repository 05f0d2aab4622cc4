"""What happens per NER request: validate, extract, time, persist to `{results_uri}/{id}/named_entities.json`.

The service only routes HTTP here; the shapes are in `ner.protocol`.
"""

from __future__ import annotations

import asyncio
import time

from ner.extractor import EntityExtractor
from ner.protocol import BatchItemResult, EntityResult, ExtractionMeta, ItemError, TextSample
from ner.schema import Extraction
from serving.errors import RequestError, ServiceError
from serving.results_store import ResultStore, new_record_id, validate_record_id

RESULT_FILE = "named_entities.json"


class EntityRecords:
    def __init__(
        self, extractor: EntityExtractor, store: ResultStore | None, *, model_name: str, persist_default: bool
    ) -> None:
        self.extractor = extractor
        self.store = store
        self.model_name = model_name
        self.persist_default = persist_default

    async def run(
        self, sample: TextSample, *, adapter: str | None, persist: bool | None, min_score: float | None = None
    ) -> EntityResult:
        text = sample.content()
        record_id = validate_record_id(sample.id) if sample.id is not None else new_record_id()
        # The record names the adapter that labelled it, the service's default labelling adapter included.
        adapter = adapter or self.extractor.labelling_adapter
        started = time.perf_counter()
        extraction: Extraction = await self.extractor.extract(text, adapter=adapter, min_score=min_score)
        latency_ms = (time.perf_counter() - started) * 1000
        result = EntityResult(
            id=record_id,
            **extraction.entities().model_dump(),
            spans=extraction.spans,
            meta=ExtractionMeta(
                model=self.model_name,
                adapter=adapter,
                latency_ms=round(latency_ms, 1),
                dropped=extraction.dropped,
                stored_at=None,
            ),
        )
        if persist if persist is not None else self.persist_default:
            if self.store is None:
                raise RequestError("this service has no result store configured", field="persist", status=409)
            stored = await self.store.save(record_id, RESULT_FILE, {"text": text, **result.model_dump()})
            result.meta.stored_at, result.meta.upload_pending = stored.uri, stored.pending
        return result

    async def run_batch(
        self,
        samples: list[TextSample],
        *,
        adapter: str | None,
        persist: bool | None,
        min_score: float | None = None,
    ) -> list[BatchItemResult]:
        """All items at once on the one engine (it batches them); one bad item fails only itself."""

        async def one(index: int, sample: TextSample) -> BatchItemResult:
            try:
                result = await self.run(sample, adapter=adapter, persist=persist, min_score=min_score)
            except ServiceError as exc:
                error = exc.with_field_prefix(f"items[{index}].")
                item_error = ItemError(message=error.message, type=error.type, param=error.field, code=error.status)
                return BatchItemResult(index=index, id=sample.id, error=item_error)
            return BatchItemResult(index=index, id=result.id, result=result)

        return list(await asyncio.gather(*(one(i, s) for i, s in enumerate(samples))))
