"""Where a model or adapter comes from: the one place that tells s3://, a local folder and a Hub id apart.

The model, adapters and fine-tuning all accept the same three spellings, so they must agree on which is
which: `s3://...` is S3; anything that exists locally, looks like a path, or is not `owner/name` is a
local folder (so a typo in a path gets "no such folder", not a Hub download attempt); the rest is a Hub id.
"""

from __future__ import annotations

import re
from enum import Enum
from pathlib import Path

HF_REPO_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")


class SourceKind(Enum):
    S3 = "s3"
    LOCAL = "local"
    HUB = "hub"


def is_s3_uri(value: str) -> bool:
    return value.startswith("s3://")


def source_kind(source: str) -> SourceKind:
    if is_s3_uri(source):
        return SourceKind.S3
    if Path(source).expanduser().exists() or source.startswith((".", "/", "~")) or not HF_REPO_ID.match(source):
        return SourceKind.LOCAL
    return SourceKind.HUB


def s3_artifact_name(uri: str) -> str:
    """The last path component of an s3:// URI without archive suffixes: a model's default served name."""
    name = uri.rstrip("/").rsplit("/", 1)[-1]
    for suffix in (".tar.gz", ".tgz", ".tar"):
        if name.endswith(suffix):
            return name.removesuffix(suffix)
    return name
