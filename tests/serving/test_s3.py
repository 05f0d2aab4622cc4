"""`serving.s3.fetch` against an S3 endpoint that breaks every download midway: the failure is an
`S3DownloadError` naming the artifact, never a raw boto3 exception that BentoML would answer with a 500."""

from __future__ import annotations

from pathlib import Path

import pytest

from serving import s3


def test_a_transfer_cut_midway_is_a_download_error(truncating_s3: str, tmp_path: Path) -> None:
    with pytest.raises(s3.S3DownloadError, match=r"could not download adapter s3://bucket/adapter"):
        s3.fetch("s3://bucket/adapter", tmp_path, endpoint_url=truncating_s3, what="adapter")
    # Nothing half-downloaded is left to be mistaken for the artifact.
    assert not any(path.is_file() for path in tmp_path.rglob("*"))
