"""Extraction jobs on the live service through BentoML's task API (submit / get_status / get) and its client.

The corpus is uploaded to the moto S3 server; results land where the service persists (`runs/` in its bucket).
"""

from __future__ import annotations

import json
import time
import uuid
from typing import Any

import bentoml
import httpx
import pytest
from bentoml.exceptions import BentoMLException

from tests.conftest import ServiceUnderTest

RECORDS = [
    {"id": "job-merkel", "body": "Angela Merkel visited the Siemens plant in Erlangen on 4 March 2019."},
    {"id": "job-cook", "text": "Tim Cook said Apple will open a campus in Austin in 2022."},
    {"id": "job-bad"},  # no text: fails alone
]


def task_client(server: ServiceUnderTest, timeout_s: float) -> bentoml.SyncHTTPClient:
    client = bentoml.SyncHTTPClient(server.url, token=server.api_key, timeout=timeout_s)
    # BentoML 1.4.39's `submit` ends by closing `self._opened_files`, which its clients no longer have
    # (moved to ClientFileManager): AttributeError after the task was submitted. Give it the empty list.
    client._opened_files = []
    return client


def wait_done(task: Any, timeout_s: float = 300) -> str:
    deadline = time.monotonic() + timeout_s
    while (status := task.get_status().value) in ("in_progress", "pending"):
        assert time.monotonic() < deadline, "the job did not end"
        time.sleep(1)
    return status


def stored(server: ServiceUnderTest, key: str) -> dict[str, Any]:
    body = server.moto.client().get_object(Bucket=server.results_bucket, Key=f"runs/{key}")["Body"].read()
    return json.loads(body)


def test_ner_job_over_s3_via_the_bentoml_client_and_resubmitted_skips(server: ServiceUnderTest) -> None:
    prefix = f"corpora/{uuid.uuid4().hex[:8]}"
    s3 = server.moto.client()
    s3.put_object(
        Bucket=server.results_bucket,
        Key=f"{prefix}/part-1.jsonl",
        Body="\n".join(json.dumps(r) for r in RECORDS).encode(),
    )
    source = f"s3://{server.results_bucket}/{prefix}/"
    with task_client(server, 120) as client:
        task = client.extract_entities_job.submit(source=source)
        assert wait_done(task) == "completed"
        manifest = task.get()
        # Resubmitted (as after a crash): everything stored for this model is skipped; the bad record fails again.
        again = client.extract_entities_job.submit(source=source, job_id=f"again-{task.id}")
        assert wait_done(again) == "completed"
        resumed = again.get()

    assert manifest["job_id"] == task.id and manifest["status"] == "completed"
    assert manifest["adapter"] == "ner"  # the bundled labelling adapter, which the stored results name too
    assert manifest["counts"] == {"read": 3, "succeeded": 2, "skipped": 0, "failed": 1}
    assert [(f["id"], f["location"]) for f in manifest["failed"]] == [("job-bad", f"{source}part-1.jsonl:3")]
    assert manifest["model"] and manifest["ended_at"] and manifest["records_per_s"] > 0
    assert stored(server, f"_jobs/{task.id}.json") == manifest
    result = stored(server, "job-merkel/named_entities.json")
    assert "Angela Merkel" in result["persons"] and result["meta"]["model"] == manifest["model"]
    assert result["meta"]["adapter"] == "ner"
    assert resumed["counts"] == {"read": 3, "succeeded": 0, "skipped": 2, "failed": 1}

    metrics = httpx.get(f"{server.url}/metrics", headers=server.headers, timeout=10).text
    assert 'extraction_job_records_total{status="skipped"}' in metrics
    assert "extraction_jobs_running" in metrics


def test_a_job_with_a_bad_source_fails_naming_it(server: ServiceUnderTest) -> None:
    with task_client(server, 60) as client:
        task = client.extract_entities_job.submit(source=f"s3://{server.results_bucket}/no-such-prefix/")
        assert wait_done(task, 60) == "failed"
        with pytest.raises(BentoMLException) as failed:
            task.get()
    assert "source" in str(failed.value) and "no .jsonl files" in str(failed.value)


def test_viggo_job_over_a_csv(server: ServiceUnderTest) -> None:
    key = f"corpora/{uuid.uuid4().hex[:8]}/valid.csv"
    rows = 'mr,ref\n"",Blizzard North released Diablo II for the Mac and I think it\'s good.\n'
    server.moto.client().put_object(Bucket=server.results_bucket, Key=key, Body=rows.encode())
    with task_client(server, 120) as client:
        task = client.viggo_job.submit(source=f"s3://{server.results_bucket}/{key}", job_id=f"viggo-{uuid.uuid4().hex}")
        assert wait_done(task) == "completed"
        manifest = task.get()
    assert manifest["counts"]["succeeded"] == 1 and manifest["adapter"] == "viggo"  # the bundled default
    result = stored(server, "valid-2/viggo.json")  # no id: file and line (the header is line 1)
    assert result["act"] and result["mr"].startswith(result["act"] + "(") and result["meta"]["adapter"] == "viggo"
