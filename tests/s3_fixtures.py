"""A real S3 endpoint for tests: moto's standalone server in its own process on a free 127.0.0.1 port.

Being a separate process, it can be stopped and started again on the same port to simulate an outage.
moto keeps its state in memory, so a restart loses every object; `start()` re-creates, empty, the buckets
made through `create_bucket`, so that fixtures sharing the server (the service's bucket) keep working.

Fixtures: `aws_credentials` (session; fake keys in the environment), `moto_server` (session; a MotoServer),
`s3_bucket` (function; a fresh, empty bucket's name on a running server), `truncating_s3` (function; the URL
of an endpoint that lists one object of s3://bucket/adapter and cuts every download of it midway).
"""

from __future__ import annotations

import contextlib
import os
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from bench.servers import free_port

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

FAKE_AWS_ENV = {
    "AWS_ACCESS_KEY_ID": "testing",
    "AWS_SECRET_ACCESS_KEY": "testing",
    "AWS_SECURITY_TOKEN": "testing",
    "AWS_SESSION_TOKEN": "testing",
    "AWS_DEFAULT_REGION": "us-east-1",
    # Never reach a real account's profile or config, nor a proxy, from a test.
    "AWS_CONFIG_FILE": os.devnull,
    "AWS_SHARED_CREDENTIALS_FILE": os.devnull,
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


class MotoServer:
    """moto.server as a subprocess; `stop()` and `start()` keep the port, so clients see an outage and a return."""

    def __init__(self, port: int, log_path: Path) -> None:
        self.port = port
        self.endpoint_url = f"http://127.0.0.1:{port}"
        self._log_path = log_path
        self._process: subprocess.Popen[bytes] | None = None
        self._buckets: set[str] = set()

    @property
    def running(self) -> bool:
        return self._process is not None and self._process.poll() is None

    def start(self, timeout_s: float = 30.0) -> None:
        if self.running:
            return
        with self._log_path.open("ab") as log:
            self._process = subprocess.Popen(
                [sys.executable, "-m", "moto.server", "-p", str(self.port), "-H", "127.0.0.1"],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self._process.poll() is not None:
                raise RuntimeError(f"moto server exited with {self._process.returncode}; see {self._log_path}")
            if self._answers():
                for bucket in self._buckets:
                    self.client().create_bucket(Bucket=bucket)
                return
            time.sleep(0.1)
        self.stop()
        raise RuntimeError(
            f"moto server did not answer on {self.endpoint_url} within {timeout_s}s; see {self._log_path}"
        )

    def stop(self) -> None:
        if self._process is None:
            return
        self._process.terminate()
        try:
            self._process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()
        self._process = None

    def log(self, last_chars: int = 4000) -> str:
        """The end of the server's log (its request lines), for failure messages."""
        return self._log_path.read_text(errors="replace")[-last_chars:]

    def client(self) -> S3Client:
        import boto3

        return boto3.client("s3", endpoint_url=self.endpoint_url, region_name="us-east-1")

    def create_bucket(self, name: str | None = None) -> str:
        name = name or f"test-{uuid.uuid4().hex[:12]}"
        client = self.client()
        with contextlib.suppress(client.exceptions.BucketAlreadyOwnedByYou):  # asking twice is fine
            client.create_bucket(Bucket=name)
        self._buckets.add(name)
        return name

    def _answers(self) -> bool:
        try:
            urllib.request.urlopen(f"{self.endpoint_url}/moto-api/", timeout=1).close()
        except urllib.error.HTTPError:
            return True  # any HTTP answer means the server is up
        except OSError:
            return False
        return True


@pytest.fixture(scope="session")
def aws_credentials() -> Iterator[None]:
    with pytest.MonkeyPatch.context() as mp:
        mp.delenv("AWS_PROFILE", raising=False)
        for name, value in FAKE_AWS_ENV.items():
            mp.setenv(name, value)
        yield


@pytest.fixture(scope="session")
def moto_server(aws_credentials: None) -> Iterator[MotoServer]:
    log_path = Path(tempfile.mkdtemp(prefix="moto-")) / "moto.log"
    server = MotoServer(free_port(), log_path)
    server.start()
    try:
        yield server
    finally:
        server.stop()


@pytest.fixture
def s3_bucket(moto_server: MotoServer) -> str:
    """A new empty bucket; restarts the server first if an earlier test left it stopped."""
    moto_server.start()
    return moto_server.create_bucket()


SIZE = 4096
LISTING = f"""<?xml version="1.0" encoding="UTF-8"?>
<ListBucketResult xmlns="http://s3.amazonaws.com/doc/2006-03-01/">
<Name>bucket</Name><Prefix>adapter/</Prefix><KeyCount>1</KeyCount><MaxKeys>1000</MaxKeys><IsTruncated>false</IsTruncated>
<Contents><Key>adapter/weights.bin</Key><Size>{SIZE}</Size><ETag>"0123456789abcdef0123456789abcdef"</ETag>
<StorageClass>STANDARD</StorageClass></Contents>
</ListBucketResult>"""


class TruncatingS3(BaseHTTPRequestHandler):
    """Lists one object, then sends a tenth of it and hangs up: a connection reset in the middle of a transfer."""

    protocol_version = "HTTP/1.1"

    def do_HEAD(self) -> None:
        self._head(SIZE, "application/octet-stream")

    def do_GET(self) -> None:
        if "list-type=2" in self.path:
            body = LISTING.encode()
            self._head(len(body), "application/xml")
            self.wfile.write(body)
            return
        self._head(SIZE, "application/octet-stream")
        self.wfile.write(b"\0" * (SIZE // 10))
        self.wfile.flush()
        self.close_connection = True

    def _head(self, length: int, content_type: str) -> None:
        self.send_response(200)
        self.send_header("Content-Type", content_type)
        self.send_header("Content-Length", str(length))
        self.send_header("ETag", '"0123456789abcdef0123456789abcdef"')
        self.end_headers()

    def log_message(self, format: str, *args: object) -> None:  # quiet: pytest shows failures
        pass


@pytest.fixture
def truncating_s3(aws_credentials: None) -> Iterator[str]:
    """The endpoint URL of a `TruncatingS3` server on a free 127.0.0.1 port."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), TruncatingS3)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()
