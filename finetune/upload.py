"""Upload an adapter folder to s3://bucket/prefix (serving.s3's URI parsing and client)."""

from __future__ import annotations

from pathlib import Path

from tqdm import tqdm


def upload_folder(folder: Path, uri: str, *, endpoint_url: str | None = None) -> list[str]:
    """Upload every file under `folder` to `uri`/relative/path; return the object keys written."""
    from serving.s3 import S3Uri, make_client

    target = S3Uri.parse(uri)
    client = make_client(endpoint_url)
    files = sorted(p for p in folder.rglob("*") if p.is_file())
    keys = []
    for path in tqdm(files, desc=f"uploading to {target}", unit="file"):
        key = target.join(path.relative_to(folder).as_posix()).key
        client.upload_file(str(path), target.bucket, key)
        keys.append(key)
    return keys
