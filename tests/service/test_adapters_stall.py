"""Registering a large adapter from S3 does not stall token streaming. Downloads used to run inside the async
handler: a 410 MB registration from the local S3 server froze a concurrent /generate stream for 15.8 s."""

from __future__ import annotations

import concurrent.futures
import json
import os
import re
import threading
import time

import httpx
import pytest

from serving.paths import DEFAULT_CACHE_DIR, REPO_ROOT
from tests.conftest import ServiceUnderTest

BUNDLED = REPO_ROOT / "finetune" / "adapters" / "viggo-smollm2"
# A download long enough that, run on the event loop, it would freeze the streams past STALL_S. The length
# comes from many small objects (a GET each), not from one large one: on the project's CI machine the local S3
# server (moto) once took 5 min to send 100 MiB and later sent 24 MiB with 30 s read timeouts, while here both
# take a second or two. Small bodies keep the test off that path and its time bounded on any machine.
WEIGHT_BYTES = 1 << 20
EXTRA_FILES = 100
EXTRA_BYTES = 8 << 10
REGISTERING_S = 3.0
BASELINE_S = 3.0
STALL_S = 1.0


@pytest.fixture(scope="module")
def big_adapter(server: ServiceUnderTest, tmp_path_factory: pytest.TempPathFactory) -> str:
    """A valid-looking adapter folder in S3: weights and EXTRA_FILES other files. Its config names another base
    model, so it is refused only after the whole download (validation reads the downloaded folder) and never
    reaches the engine."""
    folder = tmp_path_factory.mktemp("big-adapter")
    config = json.loads((BUNDLED / "adapter_config.json").read_text())
    (folder / "adapter_config.json").write_text(
        json.dumps({**config, "base_model_name_or_path": "meta-llama/Llama-3.1-8B-Instruct"})
    )
    (folder / "adapter_model.safetensors").write_bytes(os.urandom(WEIGHT_BYTES))
    (folder / "extra").mkdir()
    for index in range(EXTRA_FILES):
        (folder / "extra" / f"part-{index:04d}.bin").write_bytes(os.urandom(EXTRA_BYTES))
    server.moto.start()
    bucket = server.moto.create_bucket("adapter-stall")
    client = server.moto.client()
    for file in folder.rglob("*"):
        if file.is_file():
            client.upload_file(str(file), bucket, f"big/{file.relative_to(folder)}")
    return f"s3://{bucket}/big"


class Streams:
    """/generate streams, one after another until stopped, noting the wait before every chunk: a stream's
    first chunk counts from its request, so a stall between two streams shows too."""

    def __init__(self, server: ServiceUnderTest) -> None:
        self.server = server
        self.waits: list[tuple[float, float]] = []  # (since, chunk arrived), time.monotonic()
        self.errors: list[BaseException] = []
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> Streams:
        self._thread.start()
        deadline = time.monotonic() + 120
        while len(self.waits) < 5 and time.monotonic() < deadline and not self.errors:
            time.sleep(0.05)
        assert len(self.waits) >= 5, f"no stream started: {self.errors}"
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(timeout=120)

    def _run(self) -> None:
        body = {"prompt": "Once upon a time", "max_tokens": 300, "temperature": 0.8}
        try:
            with httpx.Client(base_url=self.server.url, headers=self.server.headers, timeout=120) as client:
                while not self._stop.is_set():
                    since = time.monotonic()
                    with client.stream("POST", "/generate", json=body) as response:
                        assert response.status_code == 200, response.read()
                        for _ in response.iter_raw():
                            now = time.monotonic()
                            self.waits.append((since, now))
                            since = now
                            if self._stop.is_set():
                                break
        except BaseException as exc:  # reported by the test
            self.errors.append(exc)


def test_stream_keeps_flowing_while_a_large_adapter_downloads(server: ServiceUnderTest, big_adapter: str) -> None:
    wall_started = time.time()
    responses: list[httpx.Response] = []
    with Streams(server) as streams:
        time.sleep(BASELINE_S)  # the same streams without a registration, for the failure message
        started = time.monotonic()
        while time.monotonic() - started < REGISTERING_S:
            try:
                responses.append(
                    httpx.post(
                        f"{server.url}/admin/adapters",
                        headers=server.headers,
                        timeout=300,
                        json={"adapter": {"name": "big", "source": big_adapter}},
                    )
                )
            except httpx.TimeoutException:
                pytest.fail(f"no answer in 300 s; service log:\n{server.log()[-6000:]}\nS3 log:\n{server.moto.log()}")
        ended = time.monotonic()
    assert not streams.errors, streams.errors
    # Downloaded in full, then refused by validation.
    for response in responses:
        assert response.status_code == 422 and "base model" in response.text, (response.text, server.log()[-6000:])
    before = [arrived - since for since, arrived in streams.waits if arrived < started]
    during = [arrived - since for since, arrived in streams.waits if arrived >= started and since <= ended]
    longest = max(response.elapsed.total_seconds() for response in responses)
    report = (
        f"largest gap between chunks {max(during):.2f} s over {len(during)} chunks while an adapter of "
        f"{EXTRA_FILES + 2} files was registered {len(responses)} times in {ended - started:.1f} s, the longest "
        f"registration {longest:.2f} s (before: {max(before):.2f} s)"
    )
    print(report)
    # A registration shorter than STALL_S could not show a stall even on the event loop: the test would be blind.
    assert longest > 1.5 * STALL_S, report
    assert len(during) >= 5, report
    assert max(during) < STALL_S, report
    # The refused downloads do not stay on disk.
    downloads = DEFAULT_CACHE_DIR / "adapters" / "s3"
    assert not [p for p in downloads.glob("big-*") if p.stat().st_mtime >= wall_started]


def test_racing_registrations_of_one_adapter_download_it_once(server: ServiceUnderTest) -> None:
    server.moto.start()
    bucket = server.moto.create_bucket("adapter-race")
    client = server.moto.client()
    for name in ("adapter_config.json", "adapter_model.safetensors"):
        client.upload_file(str(BUNDLED / name), bucket, f"viggo/{name}")
    source = f"s3://{bucket}/viggo"

    def register(_: int) -> httpx.Response:
        return httpx.post(
            f"{server.url}/admin/adapters",
            headers=server.headers,
            timeout=300,
            json={"adapter": {"name": "viggo-raced", "source": source}},
        )

    with concurrent.futures.ThreadPoolExecutor(5) as pool:
        responses = list(pool.map(register, range(5)))
    assert [r.status_code for r in responses] == [200] * 5, [r.text for r in responses]
    # One log line per download (the progress bar's lines say "downloading adapter ...:  63%|...").
    assert len(re.findall(rf"downloading adapter {re.escape(source)}: \d+ files", server.log())) == 1
