"""Persist results to `{results_uri}/{id}/{filename}` (a local folder or s3://bucket/prefix) without losing any.

When S3 cannot take a result (down, timing out, 5xx, missing bucket, bad credentials), the result goes to a
local spool folder, one file per result, and `save` returns normally. A background task uploads the spool with
capped, jittered exponential backoff and deletes a spool file only after its upload succeeded. The spool is
the only state: a restarted service (or another worker sharing the folder) picks up where the last one left.

Usage:

    store = ResultStore.from_settings(settings)   # callers skip it when settings.persist_results is False
    await store.start()
    stored = await store.save(record_id, "named_entities.json", {"entities": [...]})
    ...
    await store.close()
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import random
import re
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from prometheus_client import Counter, Gauge

from serving.errors import RequestError
from serving.s3 import S3Uri, make_client
from serving.settings import ServiceSettings
from serving.sources import is_s3_uri

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

# A path component that cannot climb out of its folder or hide as a dotfile.
SAFE_NAME = re.compile(r"[A-Za-z0-9_-][A-Za-z0-9._-]{0,127}")

# Module level so that importing twice in one process (tests, reloads) never registers a metric twice.
# Workers that share a spool folder each count all of it: the max, not the sum, is the truth.
SPOOL_PENDING = Gauge(
    "results_spool_pending", "Results waiting in the local spool for S3 to take them.", multiprocess_mode="livemax"
)
SPOOLED = Counter("results_spooled", "Results written to the local spool because S3 could not take them.")
SPOOL_UPLOADED = Counter("results_spool_uploaded", "Spooled results uploaded to S3 later.")


class InvalidRecordId(RequestError):
    """A caller's record id that cannot name a result folder."""


def validate_record_id(record_id: str) -> str:
    if not isinstance(record_id, str) or not SAFE_NAME.fullmatch(record_id) or ".." in record_id:
        raise InvalidRecordId(
            f"{record_id!r} is invalid: use 1-128 letters, digits, '.', '_' or '-', not starting with '.' "
            "and without '..'; or leave it out to get a generated one",
            field="id",
        )
    return record_id


def new_record_id() -> str:
    return uuid.uuid4().hex


@dataclass(frozen=True)
class StoredAt:
    uri: str  # where the result is, or will be once the spool has been uploaded
    pending: bool  # True: spooled locally, not in S3 yet


def _atomic_write(path: Path, data: bytes) -> None:
    """Write-then-rename with fsyncs, so a reader or a crash sees either nothing or the whole file."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(tmp)
        raise
    dir_fd = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(dir_fd)  # makes the rename itself survive a power loss
    finally:
        os.close(dir_fd)


class ResultStore:
    """Saves results to a local folder, or to S3 with a local spool as the fallback; see the module docstring."""

    def __init__(
        self,
        results_uri: str,
        *,
        spool_dir: Path,
        endpoint_url: str | None = None,
        s3_timeout_s: float = 2.0,
        s3_max_attempts: int = 2,
        backoff_initial_s: float = 1.0,
        backoff_max_s: float = 60.0,
        rescan_interval_s: float = 60.0,
    ) -> None:
        self._s3: S3Uri | None = S3Uri.parse(results_uri) if is_s3_uri(results_uri) else None
        self._local_root = None if self._s3 else Path(results_uri).resolve()
        # Short timeouts and few retries: an outage should send results to the spool within seconds, and the
        # background uploader does the patient retrying.
        self._client: S3Client | None = (
            make_client(endpoint_url, max_attempts=s3_max_attempts, timeout_s=s3_timeout_s) if self._s3 else None
        )
        self._spool_dir = spool_dir
        self._backoff_initial_s = backoff_initial_s
        self._backoff_max_s = backoff_max_s
        self._rescan_interval_s = rescan_interval_s
        self._pending: set[str] = set(self._scan_spool()) if self._s3 else set()
        self._wake = asyncio.Event()
        self._task: asyncio.Task[None] | None = None
        self._closed = False
        SPOOL_PENDING.set(len(self._pending))

    @classmethod
    def from_settings(cls, settings: ServiceSettings) -> ResultStore:
        return cls(settings.results_uri, spool_dir=settings.resolved_spool_dir, endpoint_url=settings.s3_endpoint_url)

    async def start(self) -> None:
        """Start the background uploader; it first uploads whatever an earlier run left in the spool."""
        if self._s3 and self._task is None:
            self._task = asyncio.create_task(self._run_uploader(), name="results-spool-uploader")
            if self._pending:
                log.info("resuming upload of %d spooled result(s) from %s", len(self._pending), self._spool_dir)

    async def close(self, timeout_s: float = 5.0) -> None:
        """Stop the uploader, then try once more, for at most `timeout_s`, to upload what is spooled.

        What is still spooled afterwards stays on disk for the next start. Only the first call does anything:
        the drain closes the store within the grace period, the shutdown hook's call then has nothing to do.
        """
        if self._closed:
            return
        self._closed = True
        if self._task is not None:
            self._task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._task
            self._task = None
        if self._pending:
            log.info("flushing %d spooled result(s) to S3, for up to %.1f s", len(self._pending), timeout_s)
            with contextlib.suppress(asyncio.TimeoutError):
                await asyncio.wait_for(self._upload_pass(), timeout_s)
            if self._pending:
                log.warning(
                    "%d result(s) remain spooled in %s; they upload on the next start",
                    len(self._pending),
                    self._spool_dir,
                )

    async def save(self, record_id: str, filename: str, payload: dict[str, Any]) -> StoredAt:
        """Store `payload` as JSON at `{results_uri}/{record_id}/{filename}`; returns where it went.

        Raises InvalidRecordId for a bad id, ValueError for a bad filename, TypeError for a payload that is
        not JSON-serialisable, OSError when the local folder or the spool cannot be written.
        """
        validate_record_id(record_id)
        if not SAFE_NAME.fullmatch(filename) or ".." in filename:
            raise ValueError(f"result filename {filename!r} must be 1-128 letters, digits, '.', '_' or '-'")
        body = json.dumps(payload, ensure_ascii=False).encode()

        if self._local_root is not None:
            path = self._local_root / record_id / filename
            await asyncio.to_thread(_atomic_write, path, body)
            return StoredAt(str(path), pending=False)

        assert self._s3 is not None and self._client is not None
        target = self._s3.join(record_id, filename)
        # With a backlog, queue behind it: an older spooled version of this key must not land after this one,
        # and a store that is failing need not be waited on for another timeout.
        if not self._pending:
            try:
                await asyncio.to_thread(self._put, target.bucket, target.key, body)
                return StoredAt(str(target), pending=False)
            except Exception as exc:  # any failure of the put, whatever its kind, is what the spool is for
                log.warning("could not store %s (%s); spooling it for a later upload", target, exc)
        await self._spool(target, body)
        return StoredAt(str(target), pending=True)

    async def load(self, record_id: str, filename: str) -> dict[str, Any] | None:
        """The JSON stored at `{results_uri}/{record_id}/{filename}`, or None when there is none.

        Results still waiting in the spool are not seen. Raises what the read raised (S3 unreachable, bad JSON).
        """
        validate_record_id(record_id)
        data: bytes | None
        if self._local_root is not None:
            path = self._local_root / record_id / filename
            try:
                data = await asyncio.to_thread(path.read_bytes)
            except FileNotFoundError:
                return None
        else:
            assert self._s3 is not None
            target = self._s3.join(record_id, filename)
            data = await asyncio.to_thread(self._get, target.bucket, target.key)
        if data is None:
            return None
        loaded = json.loads(data)
        return loaded if isinstance(loaded, dict) else None

    def _get(self, bucket: str, key: str) -> bytes | None:
        assert self._client is not None
        try:
            return self._client.get_object(Bucket=bucket, Key=key)["Body"].read()
        except self._client.exceptions.NoSuchKey:
            return None

    def pending(self) -> int:
        """Spooled results not uploaded yet."""
        return len(self._pending)

    async def drain(self, timeout_s: float) -> bool:
        """Wait up to `timeout_s` until nothing is spooled; True when that happened. Needs `start()`."""
        deadline = time.monotonic() + timeout_s
        while self._pending:
            if time.monotonic() >= deadline:
                return False
            await asyncio.sleep(0.05)
        return True

    # --- S3 and the spool ----------------------------------------------------------------------------

    def _put(self, bucket: str, key: str, body: bytes) -> None:
        assert self._client is not None
        self._client.put_object(Bucket=bucket, Key=key, Body=body, ContentType="application/json")

    async def _spool(self, target: S3Uri, body: bytes) -> None:
        # The destination travels with the body, so a restart with other settings still uploads it where the
        # caller was told it would be. A time-ordered name keeps uploads of one key in save order.
        name = f"{time.time_ns():020d}-{uuid.uuid4().hex}.json"
        record = {"bucket": target.bucket, "key": target.key, "body": body.decode()}
        await asyncio.to_thread(_atomic_write, self._spool_dir / name, json.dumps(record).encode())
        self._pending.add(name)
        SPOOLED.inc()
        SPOOL_PENDING.set(len(self._pending))
        self._wake.set()

    def _scan_spool(self) -> list[str]:
        # Dotfiles are writes in progress (see _atomic_write); anything not .json was set aside as corrupt.
        if not self._spool_dir.is_dir():
            return []
        return [p.name for p in self._spool_dir.iterdir() if p.suffix == ".json" and not p.name.startswith(".")]

    def _upload_spooled(self, name: str) -> bool:
        """Upload one spool file and delete it; False when S3 failed (the file stays)."""
        path = self._spool_dir / name
        try:
            record = json.loads(path.read_bytes())
            bucket, key, body = record["bucket"], record["key"], record["body"].encode()
        except FileNotFoundError:
            return True  # another worker sharing the spool uploaded it
        except (ValueError, KeyError, TypeError, AttributeError) as exc:
            # Atomic writes make this unexpected; set it aside for a person rather than retry it forever.
            corrupt = path.with_suffix(".corrupt")
            log.error("spool file %s is unreadable (%s); moved to %s, inspect it by hand", path, exc, corrupt)
            with contextlib.suppress(FileNotFoundError):
                path.rename(corrupt)
            return True
        try:
            self._put(bucket, key, body)
        except Exception as exc:  # whatever went wrong, the file stays and is retried with backoff
            log.warning("spooled result for s3://%s/%s not uploaded yet: %s", bucket, key, exc)
            return False
        path.unlink(missing_ok=True)
        SPOOL_UPLOADED.inc()
        return True

    async def _upload_pass(self) -> bool:
        """Upload the spool oldest first; stop at the first failure, which most likely hits the rest too."""
        self._pending.update(await asyncio.to_thread(self._scan_spool))
        SPOOL_PENDING.set(len(self._pending))
        for name in sorted(self._pending):
            if not await asyncio.to_thread(self._upload_spooled, name):
                return False
            self._pending.discard(name)
            SPOOL_PENDING.set(len(self._pending))
        return True

    async def _run_uploader(self) -> None:
        delay = self._backoff_initial_s
        while True:
            self._wake.clear()  # before the pass, so a result spooled during it wakes the next one
            try:
                uploaded = await self._upload_pass()
            except Exception:  # e.g. an unreadable spool folder: the task must outlive it to upload later
                log.exception("results spool uploader failed; retrying with backoff")
                uploaded = False
            if not uploaded:
                # Equal jitter: workers that saw the same outage do not retry in lockstep.
                await asyncio.sleep(random.uniform(delay / 2, delay))
                delay = min(delay * 2, self._backoff_max_s)
                continue
            if delay > self._backoff_initial_s:
                log.info("results spool drained: S3 is taking results again")
            delay = self._backoff_initial_s
            if not self._pending:
                # The timeout rescans the folder now and then for results left by a worker that has died.
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), self._rescan_interval_s)
