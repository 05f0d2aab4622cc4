"""ResultStore against a local folder and a real (moto) S3 server, outages and restarts included."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from serving.errors import RequestError
from serving.results_store import InvalidRecordId, ResultStore, StoredAt, new_record_id, validate_record_id
from serving.settings import ServiceSettings

if TYPE_CHECKING:
    from tests.s3_fixtures import MotoServer

# Idempotent when conftest.py loads it too: pytest registers a plugin module once. Importing it here
# instead would skip pytest's assertion rewriting for it.


def s3_store(server: MotoServer, bucket: str, spool: Path) -> ResultStore:
    # Fast backoff so that a test sees the uploader recover within a second or two.
    return ResultStore(
        f"s3://{bucket}/results",
        spool_dir=spool,
        endpoint_url=server.endpoint_url,
        s3_timeout_s=1.0,
        backoff_initial_s=0.2,
        backoff_max_s=0.5,
    )


def read_s3_json(server: MotoServer, bucket: str, key: str) -> dict:
    return json.loads(server.client().get_object(Bucket=bucket, Key=key)["Body"].read())


def test_local_save_is_read_back_and_leaves_no_temp_files(tmp_path: Path) -> None:
    settings = ServiceSettings(results_uri=str(tmp_path / "results"), cache_dir=tmp_path / "cache")
    store = ResultStore.from_settings(settings)

    async def scenario() -> StoredAt:
        await store.start()
        first = await store.save("rec-1", "viggo.json", {"v": 1})
        stored = await store.save("rec-1", "viggo.json", {"v": 2, "text": "café"})  # overwrite in place
        await store.close()
        assert first.uri == stored.uri
        return stored

    stored = asyncio.run(scenario())
    path = tmp_path / "results" / "rec-1" / "viggo.json"
    assert stored == StoredAt(str(path), pending=False)
    assert json.loads(path.read_text()) == {"v": 2, "text": "café"}
    assert [p.name for p in path.parent.iterdir()] == ["viggo.json"]
    assert store.pending() == 0


def test_s3_save_is_read_back(moto_server: MotoServer, s3_bucket: str, tmp_path: Path) -> None:
    settings = ServiceSettings(
        results_uri=f"s3://{s3_bucket}/runs/a/", s3_endpoint_url=moto_server.endpoint_url, cache_dir=tmp_path
    )
    store = ResultStore.from_settings(settings)
    payload = {"entities": [{"text": "Paris", "label": "LOC"}]}

    async def scenario() -> StoredAt:
        await store.start()
        try:
            return await store.save("doc-7", "named_entities.json", payload)
        finally:
            await store.close()

    stored = asyncio.run(scenario())
    assert stored == StoredAt(f"s3://{s3_bucket}/runs/a/doc-7/named_entities.json", pending=False)
    assert read_s3_json(moto_server, s3_bucket, "runs/a/doc-7/named_entities.json") == payload
    head = moto_server.client().head_object(Bucket=s3_bucket, Key="runs/a/doc-7/named_entities.json")
    assert head["ContentType"] == "application/json"
    assert not settings.resolved_spool_dir.exists() or not any(settings.resolved_spool_dir.iterdir())


@pytest.mark.parametrize(
    "bad_id",
    ["", ".", "..", "a..b", ".hidden", "a/b", "a\\b", "../etc", "a b", "é", "x" * 129, "id\n", "a\x00", None, 42],
)
def test_invalid_ids_are_rejected(bad_id: object, tmp_path: Path) -> None:
    with pytest.raises(InvalidRecordId, match=r"^id: ") as info:
        validate_record_id(bad_id)  # type: ignore[arg-type]
    assert isinstance(info.value, RequestError) and info.value.field == "id" and info.value.status == 422

    store = ResultStore(str(tmp_path), spool_dir=tmp_path / "spool")
    with pytest.raises(InvalidRecordId):
        asyncio.run(store.save(bad_id, "x.json", {}))  # type: ignore[arg-type]
    assert list(tmp_path.iterdir()) == []


def test_valid_and_generated_ids(tmp_path: Path) -> None:
    for good in ["a", "A-1_b.c", "x" * 128, new_record_id()]:
        assert validate_record_id(good) == good
    assert new_record_id() != new_record_id()

    store = ResultStore(str(tmp_path), spool_dir=tmp_path / "spool")
    with pytest.raises(ValueError, match="filename"):
        asyncio.run(store.save("ok", "../escape.json", {}))


def test_outage_spools_then_uploads_everything(moto_server: MotoServer, s3_bucket: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    store = s3_store(moto_server, s3_bucket, spool)
    payloads = {f"rec-{i}": {"i": i, "text": f"result {i}"} for i in range(5)}

    async def scenario() -> None:
        await store.start()
        try:
            assert (await store.save("before", "viggo.json", {"ok": True})).pending is False
            await asyncio.to_thread(moto_server.stop)
            try:
                for record_id, payload in payloads.items():
                    stored = await store.save(record_id, "viggo.json", payload)
                    assert stored == StoredAt(f"s3://{s3_bucket}/results/{record_id}/viggo.json", pending=True)
                assert store.pending() == len(payloads)
                assert len(list(spool.glob("*.json"))) == len(payloads)
                await asyncio.sleep(1.0)  # the uploader retries against the dead server and keeps everything
                assert store.pending() == len(payloads)
            finally:
                await asyncio.to_thread(moto_server.start)  # with the bucket re-created, empty
            assert await store.drain(timeout_s=15), f"{store.pending()} result(s) still spooled"
        finally:
            await store.close()

    asyncio.run(scenario())
    for record_id, payload in payloads.items():
        assert read_s3_json(moto_server, s3_bucket, f"results/{record_id}/viggo.json") == payload
    assert list(spool.iterdir()) == []


def test_new_store_resumes_what_an_earlier_one_spooled(moto_server: MotoServer, s3_bucket: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool"

    async def spool_while_down() -> None:
        store = s3_store(moto_server, s3_bucket, spool)
        moto_server.stop()
        try:
            await store.start()
            for i in range(3):
                assert (await store.save(f"r{i}", "named_entities.json", {"n": i})).pending
            # Saving the same key again keeps save order: the later version must win after the upload.
            assert (await store.save("r0", "named_entities.json", {"n": "latest"})).pending
            await store.close(timeout_s=1.0)  # server still down: everything stays spooled
            assert store.pending() == 4
        finally:
            await asyncio.to_thread(moto_server.start)

    asyncio.run(spool_while_down())
    assert len(list(spool.glob("*.json"))) == 4

    async def restart() -> None:
        store = s3_store(moto_server, s3_bucket, spool)
        assert store.pending() == 4  # found on construction, before any upload
        await store.start()
        try:
            assert await store.drain(timeout_s=15), f"{store.pending()} result(s) still spooled"
        finally:
            await store.close()

    asyncio.run(restart())
    assert read_s3_json(moto_server, s3_bucket, "results/r0/named_entities.json") == {"n": "latest"}
    for i in (1, 2):
        assert read_s3_json(moto_server, s3_bucket, f"results/r{i}/named_entities.json") == {"n": i}
    assert list(spool.iterdir()) == []


def test_corrupt_spool_file_is_set_aside(moto_server: MotoServer, s3_bucket: str, tmp_path: Path) -> None:
    spool = tmp_path / "spool"
    spool.mkdir()
    (spool / "00000000000000000001-broken.json").write_text("{not json")
    store = s3_store(moto_server, s3_bucket, spool)

    async def scenario() -> None:
        await store.start()
        try:
            assert await store.drain(timeout_s=5)
            assert not (await store.save("after", "x.json", {"ok": 1})).pending
        finally:
            await store.close()

    asyncio.run(scenario())
    assert [p.name for p in spool.iterdir()] == ["00000000000000000001-broken.corrupt"]
    assert read_s3_json(moto_server, s3_bucket, "results/after/x.json") == {"ok": 1}
