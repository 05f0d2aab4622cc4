"""S3 access shared by models, adapters and results: URI parsing, clients, verified cached downloads."""

from __future__ import annotations

import hashlib
import json
import logging
import shutil
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING

from tqdm import tqdm

if TYPE_CHECKING:
    from mypy_boto3_s3 import S3Client

log = logging.getLogger(__name__)

COMPLETE_MARKER = ".download-complete.json"
ARCHIVE_SUFFIXES = (".tar", ".tar.gz", ".tgz")


class S3DownloadError(RuntimeError):
    """An s3:// artifact could not be fetched or failed its integrity check."""


class S3NotFoundError(S3DownloadError):
    """Nothing is stored under the s3:// prefix (or at the archive's key)."""


class S3TooLargeError(S3DownloadError):
    """The artifact is larger than the caller's `max_bytes`; nothing was downloaded."""


@dataclass(frozen=True)
class S3Uri:
    bucket: str
    key: str  # a prefix or an object key, without a leading slash

    @classmethod
    def parse(cls, uri: str) -> S3Uri:
        if not uri.startswith("s3://"):
            raise ValueError(f"{uri!r} is not an s3:// URI")
        bucket, _, key = uri[len("s3://") :].partition("/")
        if not bucket:
            raise ValueError(f"{uri!r} names no bucket: expected s3://bucket/prefix")
        return cls(bucket, key.strip("/"))

    def join(self, *parts: str) -> S3Uri:
        return S3Uri(self.bucket, str(PurePosixPath(self.key, *parts)).lstrip("/"))

    def __str__(self) -> str:
        return f"s3://{self.bucket}/{self.key}"


def make_client(endpoint_url: str | None = None, *, max_attempts: int = 3, timeout_s: float = 10.0) -> S3Client:
    """A boto3 S3 client on the standard credential chain; `endpoint_url` points it at MinIO & co."""
    import boto3
    from botocore.config import Config

    config = Config(
        retries={"max_attempts": max_attempts, "mode": "standard"},
        connect_timeout=timeout_s,
        read_timeout=timeout_s * 3,
        s3={"addressing_style": "path"} if endpoint_url else None,
    )
    return boto3.client("s3", endpoint_url=endpoint_url, config=config)


def _cache_dir_for(uri: S3Uri, endpoint_url: str | None, cache_root: Path) -> Path:
    digest = hashlib.sha256(f"{endpoint_url or ''}|{uri}".encode()).hexdigest()[:16]
    return cache_root / f"{PurePosixPath(uri.key).name or uri.bucket}-{digest}"


def _verify(path: Path, size: int, etag: str) -> None:
    """Check size, and MD5 where the ETag is one (single-part uploads)."""
    if path.stat().st_size != size:
        raise S3DownloadError(f"{path.name}: got {path.stat().st_size} bytes, S3 says {size}")
    etag = etag.strip('"')
    if "-" not in etag and len(etag) == 32:
        md5 = hashlib.md5(usedforsecurity=False)
        with path.open("rb") as fh:
            for block in iter(lambda: fh.read(1 << 20), b""):
                md5.update(block)
        if md5.hexdigest() != etag:
            raise S3DownloadError(f"{path.name}: MD5 {md5.hexdigest()} does not match ETag {etag}")


def _safe_extract(archive: Path, dest: Path, max_bytes: int | None) -> None:
    with tarfile.open(archive) as tar:
        unpacked = sum(member.size for member in tar.getmembers())
        if max_bytes is not None and unpacked > max_bytes:  # a small archive may unpack to a huge folder
            raise S3TooLargeError(f"{archive.name} unpacks to {unpacked} bytes, more than the {max_bytes} allowed")
        tar.extractall(dest, filter="data")  # refuses absolute paths, '..' and links out of dest
    # An archive of one top folder holds the model one level down: lift it.
    entries = list(dest.iterdir())
    if len(entries) == 1 and entries[0].is_dir():
        inner = entries[0]
        for item in inner.iterdir():
            item.rename(dest / item.name)
        inner.rmdir()


def fetch(
    uri: str,
    cache_root: Path,
    *,
    endpoint_url: str | None = None,
    what: str = "artifact",
    max_bytes: int | None = None,
) -> Path:
    """Download an s3:// prefix (a folder of files) or a .tar/.tar.gz object once; return the local folder.

    Blocking (boto3): async callers run it on a worker thread. `max_bytes` is checked against the listed
    sizes before anything is downloaded (and an archive's unpacked size before it is unpacked).
    A download lands in a temporary folder and is renamed into place only when every file passed its
    size/MD5 check, so an interrupted download is never mistaken for a complete one.
    """
    from boto3.exceptions import Boto3Error
    from botocore.exceptions import BotoCoreError, ClientError

    parsed = S3Uri.parse(uri)
    dest = _cache_dir_for(parsed, endpoint_url, cache_root)
    if (dest / COMPLETE_MARKER).exists():
        return dest
    cache_root.mkdir(parents=True, exist_ok=True)
    client = make_client(endpoint_url)
    try:
        if parsed.key.endswith(ARCHIVE_SUFFIXES):
            head = client.head_object(Bucket=parsed.bucket, Key=parsed.key)
            objects = [{"Key": parsed.key, "Size": head["ContentLength"], "ETag": head["ETag"]}]
            base = str(PurePosixPath(parsed.key).parent)
        else:
            prefix = f"{parsed.key}/" if parsed.key else ""
            objects = [
                obj
                for page in client.get_paginator("list_objects_v2").paginate(Bucket=parsed.bucket, Prefix=prefix)
                for obj in page.get("Contents", [])
                if not obj["Key"].endswith("/")
            ]
            base = parsed.key
        if not objects:
            raise S3NotFoundError(f"{what} {uri}: no objects under that prefix (check the bucket and prefix)")
        total = sum(obj["Size"] for obj in objects)
        if max_bytes is not None and total > max_bytes:
            raise S3TooLargeError(
                f"{what} {uri} is {total} bytes ({len(objects)} files), more than the {max_bytes} allowed"
            )
        log.info("downloading %s %s: %d files, %d bytes", what, uri, len(objects), total)
        staging = Path(tempfile.mkdtemp(prefix=".partial-", dir=cache_root))
        try:
            with tqdm(total=total, unit="B", unit_scale=True, desc=f"downloading {what} {uri}") as bar:
                for obj in objects:
                    relative = (
                        PurePosixPath(obj["Key"]).relative_to(base)
                        if base not in ("", ".")
                        else PurePosixPath(obj["Key"])
                    )
                    if ".." in relative.parts:
                        raise S3DownloadError(f"{what} {uri}: refusing object key {obj['Key']!r}")
                    target = staging / relative
                    target.parent.mkdir(parents=True, exist_ok=True)
                    client.download_file(parsed.bucket, obj["Key"], str(target), Callback=bar.update)
                    _verify(target, obj["Size"], obj["ETag"])
            if parsed.key.endswith(ARCHIVE_SUFFIXES):
                archive = staging / PurePosixPath(parsed.key).name
                unpacked = Path(tempfile.mkdtemp(prefix=".partial-", dir=cache_root))
                try:
                    _safe_extract(archive, unpacked, max_bytes)
                finally:
                    shutil.rmtree(staging)
                    staging = unpacked  # removed by the outer `finally` unless renamed into place
            (staging / COMPLETE_MARKER).write_text(json.dumps({"uri": uri, "objects": len(objects), "bytes": total}))
            shutil.rmtree(dest, ignore_errors=True)
            staging.rename(dest)
        finally:
            shutil.rmtree(staging, ignore_errors=True)
    # Boto3Error: the transfer manager's own (RetriesExceededError after read timeouts on a slow server).
    except (BotoCoreError, ClientError, Boto3Error) as exc:
        raise S3DownloadError(f"could not download {what} {uri}: {exc}") from exc
    return dest
