"""SIGTERM to `bentoml serve` with requests in flight, a restart on the same result spool, and a killed engine.

Two real services, one after the other (each engine start costs a minute on CI's 2 cores):

1. The first gets SIGTERM while streams (/generate and /v1, short and longer than the grace period), an NER
   batch and a ViGGO request run, and while S3 is down so that results wait in the spool. Its observations
   are gathered once (`drained`) and checked by several tests.
2. The second starts on the same spool with S3 back and must upload every result; then its engine core is
   killed with SIGKILL.
"""

from __future__ import annotations

import contextlib
import json
import os
import re
import signal
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import bentoml
import httpx
import psutil
import pytest

from bench.servers import free_port
from tests.lifecycle.serve import Serve, start_serve
from tests.s3_fixtures import FAKE_AWS_ENV, MotoServer

pytestmark = pytest.mark.engine

# Ample for the short requests even on a loaded machine (at a load of 20 on 2 cores, 60 s was not enough for
# the NER batch); the long streams outlast it on any CPU (the default model decodes at most ~40 tokens/s per
# stream here, so 8,000 tokens take well over 120 s).
GRACE_S = 120
SHORT_TOKENS = 16
LONG_TOKENS = 8000
# A prompt the model continues without ever ending its answer, so that /generate's length is max_tokens too.
PROMPT = "Count from 1 to 1000: 1, 2, 3,"
MODEL_NAME = "SmolLM2-135M-Instruct"
BUCKET = "lifecycle-results"
TEXT = "Angela Merkel visited Siemens in Erlangen on 4 March 2019."
SINGLE_IDS = ["before-sigterm"]
BATCH_IDS = ["in-flight-0", "in-flight-1", "in-flight-2"]
# How long /readyz may take to say 503 after SIGTERM: within the grace period, so while requests still run.
# Here it takes well under a second; on a CI machine with every stream decoding on its 2 cores, 8.9 s once.
NOT_READY_WITHIN_S = 60
# For each request sent while draining: well inside the grace period, so the replica still serves.
PROBE_TIMEOUT_S = 30


@dataclass
class StreamRecord:
    text: str = ""
    tokens: int | None = None  # /v1: completion_tokens of the usage chunk
    finish_reason: str | None = None
    error: BaseException | None = None
    first_at: float | None = None
    last_at: float | None = None
    started: threading.Event = field(default_factory=threading.Event)


@dataclass
class Drained:
    """What the first service did between SIGTERM and its exit."""

    streams: dict[str, StreamRecord]
    responses: dict[str, httpx.Response]  # the in-flight NER batch and ViGGO request
    sigterm_at: float
    exited_at: float
    exit_code: int
    not_ready_after_s: float | None
    refused: dict[str, httpx.Response]  # requests sent while draining
    live_while_draining: int
    left_running: list[psutil.Process]
    spool_dir: Path
    log: str
    reference_text: str


@pytest.fixture(scope="module")
def moto(aws_credentials: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[MotoServer]:
    server = MotoServer(free_port(), tmp_path_factory.mktemp("moto") / "moto.log")
    server.start()
    server.create_bucket(BUCKET)
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture(scope="module")
def service_env(moto: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    return {
        **FAKE_AWS_ENV,
        "RESULTS_URI": f"s3://{BUCKET}/runs",
        "S3_ENDPOINT_URL": moto.endpoint_url,
        "SPOOL_DIR": str(tmp_path_factory.mktemp("spool")),  # the volume that outlives a replica
        "SHUTDOWN_GRACE_S": str(GRACE_S),
        "MAX_MODEL_LEN": "8192",  # room for LONG_TOKENS
        "KV_CACHE_MEMORY_BYTES": str(1 << 30),  # and for two such streams at once
    }


def _generate(serve: Serve, record: StreamRecord, max_tokens: int) -> None:
    """/generate streamed with httpx, which shows when each piece arrives."""
    body = {"prompt": PROMPT, "max_tokens": max_tokens, "temperature": 0.0}
    try:
        with httpx.stream("POST", serve.url + "/generate", json=body, timeout=600) as response:
            response.raise_for_status()
            for piece in response.iter_text():
                record.text += piece
                record.last_at = time.monotonic()
                if record.first_at is None:
                    record.first_at = record.last_at
                    record.started.set()
    except BaseException as exc:  # recorded for the test to judge
        record.error = exc
    finally:
        record.started.set()


def _generate_with_bentoml_client(serve: Serve, record: StreamRecord, max_tokens: int) -> None:
    """/generate through BentoML's own client, as a user calls it (it hands over the pieces at the end)."""
    try:
        with bentoml.SyncHTTPClient(serve.url, timeout=600) as client:
            for piece in client.generate(prompt=PROMPT, max_tokens=max_tokens, temperature=0.0):
                record.text += piece
    except BaseException as exc:
        record.error = exc


def _completions(serve: Serve, record: StreamRecord, max_tokens: int) -> None:
    """/v1/completions streamed, as the openai SDK and vLLM's benchmark call it."""
    body = {
        "model": MODEL_NAME,
        "prompt": PROMPT,
        "max_tokens": max_tokens,
        "temperature": 0.0,
        "ignore_eos": True,
        "stream": True,
        "stream_options": {"include_usage": True},
    }
    try:
        with httpx.stream("POST", serve.url + "/v1/completions", json=body, timeout=600) as response:
            response.raise_for_status()
            for line in response.iter_lines():
                if not line.startswith("data: {"):
                    continue
                chunk = json.loads(line.removeprefix("data: "))
                record.last_at = time.monotonic()
                if record.first_at is None:
                    record.first_at = record.last_at
                    record.started.set()
                if "error" in chunk:
                    record.finish_reason = "error"
                for choice in chunk.get("choices") or []:
                    record.text += choice.get("text", "")
                    record.finish_reason = choice.get("finish_reason") or record.finish_reason
                if chunk.get("usage"):
                    record.tokens = chunk["usage"]["completion_tokens"]
    except BaseException as exc:
        record.error = exc
    finally:
        record.started.set()


def _post(serve: Serve, path: str, body: dict[str, Any], out: dict[str, httpx.Response], key: str) -> None:
    out[key] = httpx.post(serve.url + path, json=body, timeout=600)


@pytest.fixture(scope="module")
def drained(service_env: dict[str, str], moto: MotoServer, tmp_path_factory: pytest.TempPathFactory) -> Drained:
    serve = start_serve(service_env, tmp_path_factory.mktemp("first") / "serve.log")
    try:
        reference = StreamRecord()
        _generate(serve, reference, SHORT_TOKENS)
        assert reference.error is None and reference.text, reference.error

        moto.stop()  # S3 outage: results go to the spool from now on
        for record_id in SINGLE_IDS:
            response = httpx.post(serve.url + "/extract_entities", json={"text": TEXT, "id": record_id}, timeout=600)
            assert response.status_code == 200 and response.json()["meta"]["upload_pending"], response.text

        responses: dict[str, httpx.Response] = {}
        batch = {"items": [{"text": TEXT, "id": record_id} for record_id in BATCH_IDS]}
        viggo = {"sentence": "Blizzard North released Diablo II for the Mac and I think it's good."}
        threads = [
            threading.Thread(target=_post, args=(serve, "/extract_entities_batch", batch, responses, "batch")),
            threading.Thread(target=_post, args=(serve, "/viggo", viggo, responses, "viggo")),
        ]
        streams = {name: StreamRecord() for name in ("generate", "v1", "generate_long", "v1_long")}
        threads += [
            threading.Thread(target=_generate, args=(serve, streams["generate"], SHORT_TOKENS)),
            threading.Thread(target=_completions, args=(serve, streams["v1"], SHORT_TOKENS)),
            threading.Thread(target=_generate_with_bentoml_client, args=(serve, streams["generate_long"], LONG_TOKENS)),
            threading.Thread(target=_completions, args=(serve, streams["v1_long"], LONG_TOKENS)),
        ]
        for thread in threads:
            thread.start()
        for name in ("generate", "v1", "v1_long"):  # BentoML's client shows nothing before the end
            assert streams[name].started.wait(300), f"{name} never started"
        processes = serve.descendants()
        assert len(processes) >= 2, processes  # the worker and the engine core at least

        serve.proc.send_signal(signal.SIGTERM)
        sigterm_at = time.monotonic()
        not_ready_after_s = None
        while time.monotonic() - sigterm_at < NOT_READY_WITHIN_S:
            with contextlib.suppress(httpx.TimeoutException):  # a loaded machine; the next probe may answer
                if httpx.get(serve.url + "/readyz", timeout=5).status_code == 503:
                    not_ready_after_s = time.monotonic() - sigterm_at
                    break
            time.sleep(0.1)
        print(f"/readyz said 503 {not_ready_after_s} s after SIGTERM")
        # Generous timeouts: with every stream decoding on CI's 2 cores the worker's loop can wait seconds for a
        # core (a 5 s /livez probe timed out there once); what is checked is the answer, not how fast it came.
        refused = {
            "generate": httpx.post(serve.url + "/generate", json={"prompt": PROMPT}, timeout=PROBE_TIMEOUT_S),
            "v1": httpx.post(
                serve.url + "/v1/completions", json={"model": MODEL_NAME, "prompt": PROMPT}, timeout=PROBE_TIMEOUT_S
            ),
            "extract_entities": httpx.post(
                serve.url + "/extract_entities", json={"text": TEXT}, timeout=PROBE_TIMEOUT_S
            ),
        }
        live_while_draining = httpx.get(serve.url + "/livez", timeout=PROBE_TIMEOUT_S).status_code

        exit_code = serve.proc.wait(timeout=GRACE_S + 120)
        exited_at = time.monotonic()
        left_running = serve.still_running()  # before the "container runtime" below kills them
        serve.kill_all()
        for thread in threads:
            thread.join(timeout=60)
        return Drained(
            streams=streams,
            responses=responses,
            sigterm_at=sigterm_at,
            exited_at=exited_at,
            exit_code=exit_code,
            not_ready_after_s=not_ready_after_s,
            refused=refused,
            live_while_draining=live_while_draining,
            left_running=left_running,
            spool_dir=Path(service_env["SPOOL_DIR"]),
            log=serve.log(),
            reference_text=reference.text,
        )
    finally:
        serve.kill_all()


def test_sigterm_lets_requests_in_flight_finish(drained: Drained) -> None:
    generate, v1 = drained.streams["generate"], drained.streams["v1"]
    # Both were still streaming when SIGTERM came, and ran to their full length.
    assert generate.last_at is not None and generate.last_at > drained.sigterm_at
    assert v1.last_at is not None and v1.last_at > drained.sigterm_at
    assert generate.error is None and generate.text == drained.reference_text
    assert v1.error is None and v1.tokens == SHORT_TOKENS and v1.finish_reason == "length"
    batch = drained.responses["batch"]
    assert batch.status_code == 200, batch.text
    assert [item["id"] for item in batch.json()] == BATCH_IDS
    assert all(item.get("error") is None for item in batch.json()), batch.text
    viggo = drained.responses["viggo"]
    assert viggo.status_code == 200 and viggo.json()["mr"], viggo.text


def test_a_stream_longer_than_the_grace_period_ends_with_an_error(drained: Drained) -> None:
    generate, v1 = drained.streams["generate_long"], drained.streams["v1_long"]
    # /generate: the connection is closed without the final chunk, so BentoML's client raises.
    assert generate.error is not None, f"ended like a complete answer after {len(generate.text)} characters"
    assert "incomplete chunked read" in str(generate.error), repr(generate.error)
    # /v1: vLLM's own way of saying so.
    assert v1.error is None and v1.finish_reason == "abort"
    assert v1.tokens is not None and v1.tokens < LONG_TOKENS
    cut = re.search(rf"grace period of {GRACE_S} s over: cutting (\d+) request\(s\)", drained.log)
    assert cut is not None and int(cut.group(1)) >= 2, "the drain did not log the cut"


def test_a_draining_replica_refuses_new_requests_and_is_not_ready(drained: Drained) -> None:
    assert drained.not_ready_after_s is not None, f"/readyz still not 503 {NOT_READY_WITHIN_S} s after SIGTERM"
    # Not ready while it drains: the long streams were still being served after /readyz said 503.
    long_stream = drained.streams["v1_long"]
    assert long_stream.last_at is not None
    assert long_stream.last_at > drained.sigterm_at + drained.not_ready_after_s, drained.not_ready_after_s
    for name, response in drained.refused.items():
        assert response.status_code == 503, (name, response.text)
        assert int(response.headers["retry-after"]) >= 1
        error = response.json()["error"]
        assert error["type"] == "service_unavailable" and "shutting down" in error["message"], name
    # Still alive: an orchestrator must not kill a replica that drains.
    assert drained.live_while_draining == 200
    in_flight = re.search(r"drain begun: refusing new requests, (\d+) in flight", drained.log)
    assert in_flight is not None and int(in_flight.group(1)) >= 4  # the streams, at least


def test_bentoml_serve_exits_last_and_nothing_outlives_it(drained: Drained) -> None:
    assert drained.exit_code == 0
    assert drained.left_running == [], [(p.pid, p.name()) for p in drained.left_running]
    # Requests ran for the grace period, then the spool flush, the engine's stop and the exits followed.
    assert GRACE_S - 1 <= drained.exited_at - drained.sigterm_at < GRACE_S + 60
    assert "engine stopped" in drained.log


def test_results_of_a_drained_replica_wait_in_the_spool(drained: Drained) -> None:
    spooled = sorted(drained.spool_dir.glob("*.json"))
    keys = sorted(json.loads(path.read_text())["key"] for path in spooled)
    assert keys == sorted(f"runs/{record_id}/named_entities.json" for record_id in SINGLE_IDS + BATCH_IDS)
    assert f"result spool: {len(keys)} result(s) left for the next start" in drained.log


@pytest.fixture(scope="module")
def restarted(
    drained: Drained, service_env: dict[str, str], moto: MotoServer, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Serve]:
    moto.start()  # S3 is back (empty but for the bucket)
    serve = start_serve(service_env, tmp_path_factory.mktemp("second") / "serve.log")
    try:
        yield serve
    finally:
        serve.kill_all()


def test_a_restart_on_the_same_spool_uploads_every_result(drained: Drained, restarted: Serve, moto: MotoServer) -> None:
    expected = {f"runs/{record_id}/named_entities.json" for record_id in SINGLE_IDS + BATCH_IDS}
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        listing = moto.client().list_objects_v2(Bucket=BUCKET, Prefix="runs/")
        found = {item["Key"] for item in listing.get("Contents", [])}
        if found >= expected and not list(drained.spool_dir.glob("*.json")):
            break
        time.sleep(0.5)
    assert found == expected
    assert not list(drained.spool_dir.glob("*.json"))
    body = json.loads(moto.client().get_object(Bucket=BUCKET, Key=sorted(expected)[0])["Body"].read())
    assert "Angela Merkel" in body["persons"]
    assert f"resuming upload of {len(expected)} spooled result(s)" in restarted.log()


def test_a_killed_engine_makes_the_replica_not_alive_and_answers_503(restarted: Serve) -> None:
    os.kill(restarted.engine_core().pid, signal.SIGKILL)
    killed_at = time.monotonic()
    while httpx.get(restarted.url + "/livez", timeout=5).status_code != 503:
        assert time.monotonic() - killed_at < 10, "/livez still 200 10 s after the engine died"
        time.sleep(0.2)
    assert httpx.get(restarted.url + "/readyz", timeout=5).status_code == 503
    for path, body in [
        ("/generate", {"prompt": PROMPT}),
        ("/extract_entities", {"text": TEXT}),
        ("/v1/completions", {"model": MODEL_NAME, "prompt": PROMPT}),
        ("/v1/chat/completions", {"model": MODEL_NAME, "messages": [{"role": "user", "content": "Hi"}]}),
    ]:
        response = httpx.post(restarted.url + path, json=body, timeout=30)
        assert response.status_code == 503, (path, response.text)
        error = response.json()["error"]
        assert error["type"] == "service_unavailable" and "engine process died" in error["message"], path
    logged_by = time.monotonic() + 10  # the engine watch looks once a second
    while "the engine process died (EngineDeadError)" not in restarted.log():
        assert time.monotonic() < logged_by, "the engine's death was not logged"
        time.sleep(0.5)

    # A replica with a dead engine still shuts down cleanly, and takes every process with it.
    restarted.proc.send_signal(signal.SIGTERM)
    assert restarted.proc.wait(timeout=GRACE_S + 60) == 0
    assert restarted.still_running() == []
