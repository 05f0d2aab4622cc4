"""Extraction jobs in process: the real job runner, EntityRecords, ViggoPredictor and ResultStore, with the
scripted engine stand-in (tests/fakes.py). NER texts here hold dates only, which the rules find without the
model (texts starting lower-case: a capitalised first word is a name
candidate); ViGGO sentences get scripted MRs. Inputs from local folders and from the moto S3 server.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from ner.extractor import EntityExtractor
from ner.records import EntityRecords
from serving import job_sources
from serving.errors import RequestError, UnavailableError
from serving.generation import ENGINE_PRIORITY
from serving.job_protocol import JobManifest
from serving.jobs import JOB_PRIORITY, Jobs, JobStoppedError
from serving.results_store import ResultStore
from tests.fakes import Completion, ScriptedGenerator
from tests.s3_fixtures import MotoServer
from viggo.predictor import ViggoPredictor

MODEL = "test-model"
MR = "give_opinion(name[Diablo II], rating[good])"


def jsonl(path: Path, records: Sequence[Any]) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join((r if isinstance(r, str) else json.dumps(r)) + "\n" for r in records))
    return path


class MrGenerator(ScriptedGenerator):
    """Answers every ViGGO request with `MR`; counts requests in flight and can fail after `fail_after` calls."""

    def __init__(self, fail_after: int | None = None) -> None:
        super().__init__()
        self.in_flight = self.most_in_flight = 0
        self.priorities: list[int] = []
        self.fail_after = fail_after

    async def complete(self, prompt_ids: Any, params: Any, *, adapter: str | None = None) -> Completion:
        self.in_flight += 1
        self.most_in_flight = max(self.most_in_flight, self.in_flight)
        self.priorities.append(ENGINE_PRIORITY.get())
        try:
            await asyncio.sleep(0.01)
            if self.fail_after is not None and len(self.priorities) > self.fail_after:
                raise UnavailableError("the engine is gone")
            return Completion(MR)
        finally:
            self.in_flight -= 1


def make_jobs(
    results: str,
    generator: ScriptedGenerator | None = None,
    *,
    roots: Sequence[Path] = (),
    model: str = MODEL,
    concurrency: int = 4,
    endpoint_url: str | None = None,
    spool: Path | None = None,
) -> Jobs:
    generator = generator or MrGenerator()
    store = ResultStore(results, spool_dir=spool or Path(results) / ".spool", endpoint_url=endpoint_url)
    records = EntityRecords(
        EntityExtractor(generator, max_text_chars=10_000), store, model_name=model, persist_default=True
    )
    return Jobs(
        generator=generator,
        engine_alive=lambda: True,
        store=store,
        entity_records=records,
        viggo_predictor=ViggoPredictor(generator),
        model_name=model,
        results_uri=results,
        input_roots=list(roots),
        s3_endpoint_url=endpoint_url,
        concurrency=concurrency,
    )


def stored(results: Path, record_id: str, filename: str = "named_entities.json") -> dict[str, Any]:
    return json.loads((results / record_id / filename).read_text())


def test_ner_job_over_a_local_folder_stores_every_record_and_a_manifest(tmp_path: Path) -> None:
    corpus, results = tmp_path / "corpus", tmp_path / "results"
    jsonl(
        corpus / "a.jsonl",
        [{"id": "doc-1", "body": "It opened on 4 March 2019."}, {"id": "doc-2", "text": "closed in 1999."}],
    )
    jsonl(corpus / "sub" / "b.jsonl", [{"text": "nothing happened."}])
    (corpus / "notes.txt").write_text("not a corpus file\n")
    jobs = make_jobs(str(results), roots=[corpus])

    manifest = asyncio.run(jobs.run(jobs.ner, str(corpus), adapter=None, overwrite=False, job_id="job-1"))

    assert manifest.status == "completed" and manifest.error is None
    assert manifest.counts.model_dump() == {"read": 3, "succeeded": 3, "skipped": 0, "failed": 0}
    assert stored(results, "doc-1")["dates"] == ["4 March 2019"]
    assert stored(results, "doc-1")["meta"]["model"] == MODEL
    # A record without an id gets one from its file and line, the same at every run.
    assert stored(results, "sub_b-1")["text"] == "nothing happened."
    on_disk = JobManifest.model_validate_json((results / "_jobs" / "job-1.json").read_text())
    assert on_disk == manifest
    assert on_disk.ended_at and on_disk.records_per_s > 0


def test_a_bad_record_fails_alone(tmp_path: Path) -> None:
    corpus = jsonl(
        tmp_path / "in.jsonl",
        ["{not json", "[1, 2]", {"id": "no-text"}, {"id": "../escape", "text": "On 1 May 2020."}, {"text": "In 2001."}],
    )
    jobs = make_jobs(str(tmp_path / "results"), roots=[tmp_path])

    manifest = asyncio.run(jobs.run(jobs.ner, str(corpus), adapter=None, overwrite=False, task_id="task-7"))

    assert manifest.job_id == "task-7" and manifest.status == "completed"
    assert (manifest.counts.succeeded, manifest.counts.failed) == (1, 4)
    failures = {f.location.rsplit(":", 1)[1]: f for f in manifest.failed}
    assert set(failures) == {"1", "2", "3", "4"}
    assert "not a JSON line" in failures["1"].reason and "not an object" in failures["2"].reason
    assert failures["3"].id == "no-text" and "text" in failures["3"].reason
    assert "invalid" in failures["4"].reason
    assert stored(tmp_path / "results", "in-5")["dates"] == ["2001"]


def test_a_resubmitted_job_skips_what_is_stored_for_the_same_model(tmp_path: Path) -> None:
    corpus = jsonl(tmp_path / "in.jsonl", [{"id": f"r{i}", "text": f"In {1990 + i}."} for i in range(5)])
    results = tmp_path / "results"
    first = asyncio.run(
        make_jobs(str(results), roots=[tmp_path]).run(
            make_jobs(str(results), roots=[tmp_path]).ner, str(corpus), adapter=None, overwrite=False, job_id="j"
        )
    )
    assert first.counts.succeeded == 5
    (results / "r3" / "named_entities.json").unlink()  # as if the last run had stopped before it

    jobs = make_jobs(str(results), roots=[tmp_path])
    again = asyncio.run(jobs.run(jobs.ner, str(corpus), adapter=None, overwrite=False, job_id="j"))
    assert (again.counts.skipped, again.counts.succeeded) == (4, 1)
    assert stored(results, "r3")["dates"] == ["1993"]

    overwritten = asyncio.run(jobs.run(jobs.ner, str(corpus), adapter=None, overwrite=True, job_id="j"))
    assert (overwritten.counts.skipped, overwritten.counts.succeeded) == (0, 5)

    other_model = make_jobs(str(results), roots=[tmp_path], model="another-model")
    rerun = asyncio.run(other_model.run(other_model.ner, str(corpus), adapter=None, overwrite=False, job_id="j"))
    assert rerun.counts.succeeded == 5, "a result of another model is not this job's result"
    assert stored(results, "r0")["meta"]["model"] == "another-model"


def test_viggo_job_over_a_csv_with_bounded_records_in_flight_at_job_priority(tmp_path: Path) -> None:
    rows = "".join(f'"{MR}","Sentence number {i}, about Diablo II."\n' for i in range(20))
    corpus = tmp_path / "valid.csv"
    corpus.write_text("mr,ref\n" + rows)
    generator = MrGenerator()
    results = tmp_path / "results"
    jobs = make_jobs(str(results), generator, roots=[tmp_path], concurrency=3)

    manifest = asyncio.run(jobs.run(jobs.viggo, str(corpus), adapter=None, overwrite=False, job_id="v"))

    assert manifest.counts.succeeded == 20
    assert generator.most_in_flight == 3
    assert set(generator.priorities) == {JOB_PRIORITY}
    result = stored(results, "valid-2", "viggo.json")  # the header is line 1
    assert result["mr"] == MR and result["sentence"] == "Sentence number 0, about Diablo II."
    assert result["meta"]["model"] == MODEL


def test_a_job_stops_when_the_engine_does_and_resumes_when_resubmitted(tmp_path: Path) -> None:
    corpus = jsonl(tmp_path / "in.jsonl", [{"sentence": f"Sentence {i} about a game."} for i in range(12)])
    results = tmp_path / "results"
    jobs = make_jobs(str(results), MrGenerator(fail_after=5), roots=[tmp_path], concurrency=1)
    with pytest.raises(JobStoppedError, match="the engine is gone; re-submit"):
        asyncio.run(jobs.run(jobs.viggo, str(corpus), adapter=None, overwrite=False, job_id="s"))
    stopped = JobManifest.model_validate_json((results / "_jobs" / "s.json").read_text())
    assert stopped.status == "failed" and stopped.counts.succeeded == 5 and stopped.ended_at

    jobs = make_jobs(str(results), roots=[tmp_path])
    resumed = asyncio.run(jobs.run(jobs.viggo, str(corpus), adapter=None, overwrite=False, job_id="s"))
    assert (resumed.counts.skipped, resumed.counts.succeeded) == (5, 7)


@pytest.mark.parametrize(
    ("source", "status"),
    [("outside", 403), ("inside/missing.jsonl", 404), ("inside/empty", 422)],
)
def test_sources_that_cannot_be_read_are_refused_naming_source(tmp_path: Path, source: str, status: int) -> None:
    (tmp_path / "inside" / "empty").mkdir(parents=True)
    (tmp_path / "outside").mkdir()
    jobs = make_jobs(str(tmp_path / "results"), roots=[tmp_path / "inside"])
    with pytest.raises(RequestError) as refused:
        asyncio.run(jobs.run(jobs.ner, str(tmp_path / source), adapter=None, overwrite=False))
    assert (refused.value.field, refused.value.status) == ("source", status)


def test_ner_job_reads_every_jsonl_under_an_s3_prefix_in_ranges(
    moto_server: MotoServer, s3_bucket: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    # Ranges of 64 bytes cut lines in the middle: every record must still arrive whole.
    monkeypatch.setattr(job_sources, "S3_READ_BYTES", 64)
    client = moto_server.client()
    first = [{"id": f"a{i}", "body": f"event on {i + 1} March 2019."} for i in range(6)]
    client.put_object(Bucket=s3_bucket, Key="corpus/part-1.jsonl", Body="\n".join(map(json.dumps, first)).encode())
    client.put_object(Bucket=s3_bucket, Key="corpus/deeper/part-2.jsonl", Body=b'{"text": "back in 1987."}\n')
    client.put_object(Bucket=s3_bucket, Key="corpus/readme.md", Body=b"not records")
    client.put_object(Bucket=s3_bucket, Key="corpus-other/x.jsonl", Body=b'{"text": "In 1950."}\n')
    results = f"s3://{s3_bucket}/results"
    jobs = make_jobs(results, endpoint_url=moto_server.endpoint_url, spool=tmp_path / "spool")

    manifest = asyncio.run(
        jobs.run(jobs.ner, f"s3://{s3_bucket}/corpus/", adapter=None, overwrite=False, job_id="s3-job")
    )

    assert manifest.counts.model_dump() == {"read": 7, "succeeded": 7, "skipped": 0, "failed": 0}
    keys = {o["Key"] for o in client.list_objects_v2(Bucket=s3_bucket, Prefix="results/")["Contents"]}
    assert keys == {f"results/a{i}/named_entities.json" for i in range(6)} | {
        "results/deeper_part-2-1/named_entities.json",
        "results/_jobs/s3-job.json",
    }
    body = client.get_object(Bucket=s3_bucket, Key="results/a5/named_entities.json")["Body"].read()
    assert json.loads(body)["dates"] == ["6 March 2019"]
