"""Extraction jobs: NER or ViGGO over a whole corpus on the service's engine, resumable, with a manifest.

A job streams its input (serving/job_sources.py) through a bounded number of records in flight
(`job_concurrency`), each record stored where the online endpoint stores it (`{results_uri}/{id}/...`). Its
engine requests run at `JOB_PRIORITY`, below interactive requests (vLLM's priority scheduling): the job
takes the engine's spare capacity, and a `/generate` arriving meanwhile is scheduled before the job's
waiting records.

Idempotent and resumable: a record whose stored result names the same model and adapter is skipped (unless
`overwrite`), so a job re-submitted after a crash or a restart continues where the last run stopped. A bad
record (unreadable line, missing text, a 4xx from the extractor) fails alone and is listed in the manifest;
only what stops every record (the engine dead, the replica draining) stops the job.

Progress: the manifest `{results_uri}/_jobs/{job_id}.json` (rewritten every `MANIFEST_INTERVAL_S` and at
the end), `/metrics` (`extraction_job_records_total{status}`, `extraction_jobs_running`) and a progress bar
in the log.
"""

from __future__ import annotations

import asyncio
import contextlib
import itertools
import logging
import time
import uuid
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal, Protocol

from prometheus_client import Counter, Gauge
from pydantic import ValidationError
from tqdm.auto import tqdm

from ner.protocol import TextSample
from ner.records import RESULT_FILE as NER_RESULT_FILE
from serving.errors import RequestError, ServiceError
from serving.generation import ENGINE_PRIORITY
from serving.job_protocol import FailedRecord, JobManifest
from serving.job_sources import RawRecord, list_inputs, read_records
from serving.results_store import ResultStore, validate_record_id

if TYPE_CHECKING:
    from ner.records import EntityRecords
    from serving.generation import AdapterResolver
    from viggo.predictor import ViggoPredictor

log = logging.getLogger(__name__)

JOB_PRIORITY = 10  # vLLM runs lower values first; interactive requests have 0
JOBS_FOLDER = "_jobs"
VIGGO_RESULT_FILE = "viggo.json"
MANIFEST_INTERVAL_S = 5.0
MAX_LISTED_FAILURES = 1000
READ_AHEAD = 256  # records read from the input per thread hop

RECORDS = Counter("extraction_job_records", "Records of extraction jobs by outcome.", ["status"])
RUNNING = Gauge("extraction_jobs_running", "Extraction jobs running now.", multiprocess_mode="livesum")

VIGGO_SENTENCE_FIELDS = ("sentence", "text", "ref", "input")  # ours, plain, the dataset CSV's, alpaca's


class HasAdapters(Protocol):
    adapters: AdapterResolver  # read at run time: the service attaches its registry after the engine starts


class JobStopped(Exception):
    """What stops every record (engine dead, replica draining): the job ends, to be re-submitted later."""


@dataclass(frozen=True)
class RecordKind:
    """How one kind of job turns a record into a stored result."""

    name: Literal["ner", "viggo"]
    result_file: str
    suffixes: tuple[str, ...]
    # (record id, the record's fields, adapter) -> None, having stored the result
    process: Callable[[str, dict[str, Any], str | None], Awaitable[None]]


class Jobs:
    """The job runner of one service worker: its engine, result store and settings."""

    def __init__(
        self,
        *,
        generator: HasAdapters,
        engine_alive: Callable[[], bool],
        store: ResultStore,
        entity_records: EntityRecords,
        viggo_predictor: ViggoPredictor,
        model_name: str,
        results_uri: str,
        input_roots: list[Path],
        s3_endpoint_url: str | None,
        concurrency: int,
    ) -> None:
        self.generator = generator
        self.engine_alive = engine_alive
        self.store = store
        self.entity_records = entity_records
        self.viggo_predictor = viggo_predictor
        self.model_name = model_name
        self.results_uri = results_uri
        self.input_roots = input_roots
        self.s3_endpoint_url = s3_endpoint_url
        self.concurrency = concurrency
        self.ner = RecordKind("ner", NER_RESULT_FILE, (".jsonl",), self._ner_record)
        self.viggo = RecordKind("viggo", VIGGO_RESULT_FILE, (".jsonl", ".csv"), self._viggo_record)

    async def run(
        self,
        kind: RecordKind,
        source: str,
        *,
        adapter: str | None,
        overwrite: bool,
        job_id: str | None = None,
        task_id: str | None = None,
    ) -> JobManifest:
        """Run a job to the end of its input; returns its final manifest (also stored). Raises a ServiceError
        when the job cannot start (bad source, unknown adapter) or had to stop (see JobStopped).

        The manifest is named by `job_id`, else by the BentoML task's id (what `submit` answered), else a new id.
        """
        job_id = job_id or task_id or uuid.uuid4().hex
        await self.generator.adapters.resolve(adapter)
        files = await asyncio.to_thread(
            list_inputs, source, kind.suffixes, roots=self.input_roots, endpoint_url=self.s3_endpoint_url
        )
        started = time.monotonic()
        manifest = JobManifest(
            job_id=job_id,
            kind=kind.name,
            source=source,
            results_uri=self.results_uri,
            model=self.model_name,
            adapter=adapter,
            overwrite=overwrite,
            status="running",
            started_at=_now(),
            updated_at=_now(),
        )
        log.info("job %s started: %s over %d file(s) at %s, adapter %s", job_id, kind.name, len(files), source, adapter)
        RUNNING.inc()
        priority = ENGINE_PRIORITY.set(JOB_PRIORITY)
        bar = tqdm(desc=f"job {job_id}", unit="record", mininterval=5.0)
        writer = asyncio.create_task(self._keep_writing(manifest, started), name=f"job-{job_id}-manifest")
        try:
            await self._process(kind, read_records(files), manifest, bar, adapter=adapter, overwrite=overwrite)
            manifest.status = "completed"
        except JobStopped as exc:
            manifest.status, manifest.error = "failed", f"{exc}; re-submit the job to resume"
            raise JobStoppedError(manifest.error) from exc
        except asyncio.CancelledError:
            manifest.status, manifest.error = "interrupted", "the service stopped the job; re-submit it to resume"
            raise
        except Exception as exc:
            manifest.status, manifest.error = "failed", f"{type(exc).__name__}: {exc}"
            raise
        finally:
            writer.cancel()
            bar.close()
            ENGINE_PRIORITY.reset(priority)
            RUNNING.dec()
            manifest.ended_at = _now()
            # Shielded: the final manifest is written even when the job is being cancelled.
            with contextlib.suppress(Exception):
                await asyncio.shield(self._write(manifest, started))
            log.info(
                "job %s %s: %s (%.2f records/s)%s",
                job_id,
                manifest.status,
                manifest.counts.model_dump(),
                manifest.records_per_s,
                f"; {manifest.error}" if manifest.error else "",
            )
        return manifest

    async def _process(
        self,
        kind: RecordKind,
        records: Iterator[RawRecord],
        manifest: JobManifest,
        bar: tqdm[Any],
        *,
        adapter: str | None,
        overwrite: bool,
    ) -> None:
        # Bounded: the reader stays at most one queue ahead of the records in flight.
        queue: asyncio.Queue[RawRecord | None] = asyncio.Queue(maxsize=2 * self.concurrency)

        async def read() -> None:
            while chunk := await asyncio.to_thread(lambda: list(itertools.islice(records, READ_AHEAD))):
                for record in chunk:
                    await queue.put(record)
            for _ in range(self.concurrency):
                await queue.put(None)

        async def work() -> None:
            while (record := await queue.get()) is not None:
                status = await self._one(kind, record, manifest, adapter=adapter, overwrite=overwrite)
                RECORDS.labels(status).inc()
                bar.update()
                bar.set_postfix(manifest.counts.model_dump(exclude={"read"}), refresh=False)

        try:
            async with asyncio.TaskGroup() as group:
                group.create_task(read())
                for _ in range(self.concurrency):
                    group.create_task(work())
        except ExceptionGroup as errors:
            raise errors.exceptions[0] from None

    async def _one(
        self, kind: RecordKind, record: RawRecord, manifest: JobManifest, *, adapter: str | None, overwrite: bool
    ) -> str:
        """Run one record; returns its outcome (succeeded, skipped, failed). Raises JobStopped only."""
        manifest.counts.read += 1
        record_id: str | None = None
        try:
            if record.fields is None:
                raise RequestError(record.error or "unreadable record")
            given = record.fields.get("id")
            record_id = validate_record_id(str(given)) if given not in (None, "") else record.default_id
            if not overwrite and await self._stored(kind, record_id, adapter):
                manifest.counts.skipped += 1
                return "skipped"
            await kind.process(record_id, record.fields, adapter)
        except ServiceError as exc:
            if exc.status >= 500:
                raise JobStopped(exc.message) from exc
            return self._failed(manifest, record, record_id, exc.message)
        except ValidationError as exc:
            return self._failed(manifest, record, record_id, "; ".join(_error_text(e) for e in exc.errors()))
        except Exception as exc:
            if not self.engine_alive():
                raise JobStopped(f"the engine stopped: {exc}") from exc
            log.exception("job %s: record at %s failed", manifest.job_id, record.location)
            return self._failed(manifest, record, record_id, f"{type(exc).__name__}: {exc}")
        manifest.counts.succeeded += 1
        return "succeeded"

    async def _stored(self, kind: RecordKind, record_id: str, adapter: str | None) -> bool:
        """Whether this record's result is stored for this model and adapter already."""
        try:
            stored = await self.store.load(record_id, kind.result_file)
        except Exception as exc:  # cannot tell (S3 unreachable, a corrupt file): run it again, which is harmless
            log.warning("could not check the stored result of %s (%s); running it again", record_id, exc)
            return False
        meta = (stored or {}).get("meta") or {}
        return stored is not None and meta.get("model") == self.model_name and meta.get("adapter") == adapter

    @staticmethod
    def _failed(manifest: JobManifest, record: RawRecord, record_id: str | None, reason: str) -> str:
        manifest.counts.failed += 1
        if len(manifest.failed) < MAX_LISTED_FAILURES:
            manifest.failed.append(FailedRecord(id=record_id, location=record.location, reason=reason))
        return "failed"

    async def _ner_record(self, record_id: str, fields: dict[str, Any], adapter: str | None) -> None:
        sample = TextSample(text=fields.get("text"), body=fields.get("body"), id=record_id)
        await self.entity_records.run(sample, adapter=adapter, persist=True)

    async def _viggo_record(self, record_id: str, fields: dict[str, Any], adapter: str | None) -> None:
        sentence = next((fields[name] for name in VIGGO_SENTENCE_FIELDS if fields.get(name)), None)
        if not isinstance(sentence, str):
            raise RequestError(f"needs a sentence: one of the fields {', '.join(VIGGO_SENTENCE_FIELDS)}")
        started = time.perf_counter()
        prediction = await self.viggo_predictor.predict(sentence, adapter)
        meta = {"model": self.model_name, "adapter": adapter, "latency_ms": (time.perf_counter() - started) * 1000}
        payload = {"id": record_id, "sentence": sentence, **prediction.model_dump(), "meta": meta}
        await self.store.save(record_id, VIGGO_RESULT_FILE, payload)

    async def _write(self, manifest: JobManifest, started: float) -> None:
        done = manifest.counts.succeeded + manifest.counts.failed
        manifest.records_per_s = round(done / max(time.monotonic() - started, 1e-9), 3)
        manifest.updated_at = _now()
        await self.store.save(JOBS_FOLDER, f"{manifest.job_id}.json", manifest.model_dump())

    async def _keep_writing(self, manifest: JobManifest, started: float) -> None:
        while True:
            try:
                await self._write(manifest, started)
            except Exception as exc:  # progress reporting must never stop the job
                log.warning("job %s: manifest not written (%s)", manifest.job_id, exc)
            await asyncio.sleep(MANIFEST_INTERVAL_S)


class JobStoppedError(ServiceError):
    """The answer of a job that stopped before the end of its input; re-submitting it resumes it."""

    status = 503
    type = "job_stopped"


def _error_text(error: Any) -> str:
    field = ".".join(str(part) for part in error.get("loc", ()))
    return f"{field}: {error.get('msg')}" if field else str(error.get("msg"))


def _now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")
