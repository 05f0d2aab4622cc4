"""The input of an extraction job, read as a stream of records: JSONL (and CSV) files from S3 or a local folder.

Nothing is loaded whole: local files are read line by line, S3 objects in ranged reads of `S3_READ_BYTES`
(a job may spend hours on one object; a range is fetched when the job gets to it, so no connection sits idle
for S3 to drop). Every record carries its location (`file:line`) and an id to fall back on
(`{file}-{line}`), stable across runs so that a re-submitted job finds the results of the last one.
"""

from __future__ import annotations

import csv
import json
import re
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Any

from serving.errors import RequestError, UpstreamError
from serving.s3 import S3Uri, make_client
from serving.sources import is_s3_uri

S3_READ_BYTES = 8 << 20
_UNSAFE_ID_CHARS = re.compile(r"[^A-Za-z0-9._-]+")


@dataclass(frozen=True)
class InputFile:
    name: str  # shown in record locations: the s3:// URI or the local path
    id_stem: str  # the file's path under the source, made a safe id prefix
    suffix: str  # ".jsonl" or ".csv"
    lines: Callable[[], Iterator[bytes]]  # the file's lines, line ends kept, read as they are consumed


@dataclass(frozen=True)
class RawRecord:
    location: str
    default_id: str
    fields: dict[str, Any] | None  # None when the line could not be read as a record
    error: str | None = None


def _id_stem(relative: str, suffix: str) -> str:
    stem = _UNSAFE_ID_CHARS.sub("_", relative.removesuffix(suffix).strip("/").replace("/", "_")).lstrip(".")
    return stem[:96] or "records"


def list_inputs(
    source: str, suffixes: tuple[str, ...], *, roots: Iterable[Path], endpoint_url: str | None
) -> list[InputFile]:
    """The files a job reads, in name order; RequestError (field `source`) if there are none or they are off-limits."""
    files = _s3_inputs(source, suffixes, endpoint_url) if is_s3_uri(source) else _local_inputs(source, suffixes, roots)
    if not files:
        raise RequestError(f"no {' or '.join(suffixes)} files at {source}", field="source")
    return files


def _local_inputs(source: str, suffixes: tuple[str, ...], roots: Iterable[Path]) -> list[InputFile]:
    path = Path(source).expanduser().resolve()
    allowed = [root.expanduser().resolve() for root in roots]
    if not any(path == root or root in path.parents for root in allowed):
        raise RequestError(
            f"{source} is not inside a folder jobs may read from (the job_input_roots setting: "
            f"{', '.join(map(str, allowed)) or 'none; use an s3:// source'})",
            field="source",
            status=403,
        )
    if not path.exists():
        raise RequestError(f"{source}: no such file or folder", field="source", status=404)
    if path.is_file():
        candidates, base = [path], path.parent
    else:
        candidates, base = sorted(p for p in path.rglob("*") if p.is_file()), path
    return [
        InputFile(str(p), _id_stem(str(p.relative_to(base)), p.suffix), p.suffix, _local_lines(p))
        for p in candidates
        if p.suffix in suffixes
    ]


def _local_lines(path: Path) -> Callable[[], Iterator[bytes]]:
    def lines() -> Iterator[bytes]:
        with path.open("rb") as handle:
            yield from handle

    return lines


def _s3_inputs(source: str, suffixes: tuple[str, ...], endpoint_url: str | None) -> list[InputFile]:
    from botocore.exceptions import BotoCoreError, ClientError

    try:
        uri = S3Uri.parse(source)
    except ValueError as exc:
        raise RequestError(str(exc), field="source") from exc
    client = make_client(endpoint_url)
    prefix = uri.key
    try:
        if prefix and not source.endswith("/") and prefix.endswith(suffixes):
            head = client.head_object(Bucket=uri.bucket, Key=prefix)
            objects = [(prefix, head["ContentLength"])]
            base = str(PurePosixPath(prefix).parent)
        else:
            listing = client.get_paginator("list_objects_v2").paginate(
                Bucket=uri.bucket, Prefix=f"{prefix}/" if prefix else ""
            )
            objects = sorted((obj["Key"], obj["Size"]) for page in listing for obj in page.get("Contents", []))
            base = prefix
    except ClientError as exc:
        raise RequestError(f"cannot read {source}: {exc}", field="source") from exc
    except BotoCoreError as exc:
        raise UpstreamError(f"cannot reach S3 for {source}: {exc}", field="source") from exc
    files = []
    for key, size in objects:
        suffix = PurePosixPath(key).suffix
        if suffix in suffixes:
            relative = key[len(base) :] if base not in ("", ".") else key
            name = f"s3://{uri.bucket}/{key}"
            files.append(InputFile(name, _id_stem(relative, suffix), suffix, _s3_lines(client, uri.bucket, key, size)))
    return files


def _s3_lines(client: Any, bucket: str, key: str, size: int) -> Callable[[], Iterator[bytes]]:
    def lines() -> Iterator[bytes]:
        pending = b""
        for start in range(0, size, S3_READ_BYTES):
            end = min(start + S3_READ_BYTES, size) - 1
            chunk = client.get_object(Bucket=bucket, Key=key, Range=f"bytes={start}-{end}")["Body"].read()
            parts = (pending + chunk).splitlines(keepends=True)
            # The last part may be a line cut by the range's end: keep it for the next range.
            pending = parts.pop() if parts and not parts[-1].endswith((b"\n", b"\r")) else b""
            yield from parts
        if pending:
            yield pending

    return lines


def read_records(files: Iterable[InputFile]) -> Iterator[RawRecord]:
    """Every record of every file, in order: a JSON object per JSONL line, a row per CSV line (after the header)."""
    for file in files:
        if file.suffix == ".csv":
            yield from _csv_records(file)
        else:
            yield from _jsonl_records(file)


def _jsonl_records(file: InputFile) -> Iterator[RawRecord]:
    for number, raw in enumerate(file.lines(), 1):
        if not raw.strip():
            continue
        location, default_id = f"{file.name}:{number}", f"{file.id_stem}-{number}"
        try:
            record = json.loads(raw)
        except ValueError as exc:  # UnicodeDecodeError included
            yield RawRecord(location, default_id, None, f"not a JSON line: {exc}")
            continue
        if isinstance(record, dict):
            yield RawRecord(location, default_id, record)
        else:
            yield RawRecord(location, default_id, None, f"a JSON {type(record).__name__}, not an object")


def _csv_records(file: InputFile) -> Iterator[RawRecord]:
    reader = csv.DictReader(line.decode("utf-8", errors="replace") for line in file.lines())
    for row in reader:
        number = reader.line_num
        yield RawRecord(f"{file.name}:{number}", f"{file.id_stem}-{number}", dict(row))
