"""Model resolution without an engine: local folders, Hub ids, s3:// (against a real
S3-protocol server) with its cache, and the clear errors a misconfiguration gets."""

from __future__ import annotations

import io
import tarfile
from pathlib import Path

import pytest

from serving import s3
from serving.default_model import SERVED_NAME, ensure_default_model
from serving.model_source import ModelNotFoundError, resolve_model
from serving.settings import ServiceSettings
from tests.s3_fixtures import MotoServer


def model_folder(root: Path) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "config.json").write_text('{"model_type": "llama"}')
    (root / "model.safetensors").write_bytes(b"\0" * 2048)
    return root


def test_default_model_is_the_converted_smollm2(tmp_path: Path) -> None:
    settings = ServiceSettings()
    resolved = resolve_model(settings)
    assert resolved.name == SERVED_NAME
    assert Path(resolved.path) == ensure_default_model(settings.cache_dir)
    assert (Path(resolved.path) / "model.safetensors").stat().st_size > 100_000_000


def test_local_folder_and_hub_id(tmp_path: Path) -> None:
    folder = model_folder(tmp_path / "my-model")
    resolved = resolve_model(ServiceSettings(model=str(folder)))
    assert resolved.path == str(folder) and resolved.name == "my-model"
    hub = resolve_model(ServiceSettings(model="meta-llama/Llama-3.1-8B-Instruct", served_model_name="llama"))
    assert hub.path == "meta-llama/Llama-3.1-8B-Instruct" and hub.name == "llama"


@pytest.mark.parametrize("spec", ["./missing-model", "/nowhere/model", "not a repo id"])
def test_missing_models_fail_clearly(spec: str) -> None:
    with pytest.raises(ModelNotFoundError, match="no such folder"):
        resolve_model(ServiceSettings(model=spec))


def test_folder_without_config_is_refused(tmp_path: Path) -> None:
    with pytest.raises(ModelNotFoundError, match=r"config\.json"):
        resolve_model(ServiceSettings(model=str(tmp_path)))


def test_s3_prefix_is_downloaded_once_and_verified(moto_server: MotoServer, tmp_path: Path) -> None:
    moto_server.start()
    bucket = moto_server.create_bucket()
    client = moto_server.client()
    source = model_folder(tmp_path / "src")
    for file in source.iterdir():
        client.upload_file(str(file), bucket, f"models/tiny/{file.name}")
    settings = ServiceSettings(
        model=f"s3://{bucket}/models/tiny", cache_dir=tmp_path / "cache", s3_endpoint_url=moto_server.endpoint_url
    )
    first = resolve_model(settings)
    assert first.name == "tiny"
    assert (Path(first.path) / "model.safetensors").read_bytes() == (source / "model.safetensors").read_bytes()
    client.delete_object(Bucket=bucket, Key="models/tiny/config.json")  # the cache must not ask S3 again
    assert resolve_model(settings) == first


def test_s3_tarball_is_unpacked(moto_server: MotoServer, tmp_path: Path) -> None:
    moto_server.start()
    bucket = moto_server.create_bucket()
    source = model_folder(tmp_path / "packed-model")
    archive = io.BytesIO()
    with tarfile.open(fileobj=archive, mode="w:gz") as tar:
        tar.add(source, arcname="packed-model")
    moto_server.client().put_object(Bucket=bucket, Key="archives/packed-model.tar.gz", Body=archive.getvalue())
    resolved = resolve_model(
        ServiceSettings(
            model=f"s3://{bucket}/archives/packed-model.tar.gz",
            cache_dir=tmp_path / "cache",
            s3_endpoint_url=moto_server.endpoint_url,
        )
    )
    assert resolved.name == "packed-model"
    assert (Path(resolved.path) / "config.json").is_file()


def test_s3_errors_name_the_uri(moto_server: MotoServer, tmp_path: Path) -> None:
    moto_server.start()
    bucket = moto_server.create_bucket()
    with pytest.raises(s3.S3DownloadError, match=f"s3://{bucket}/absent"):
        resolve_model(
            ServiceSettings(model=f"s3://{bucket}/absent", cache_dir=tmp_path, s3_endpoint_url=moto_server.endpoint_url)
        )


def test_offline_hub_model_not_in_the_cache_is_named(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(tmp_path))
    with pytest.raises(ModelNotFoundError, match=r"Llama-3\.1-8B-Instruct' is not in the Hugging Face cache"):
        resolve_model(ServiceSettings(model="meta-llama/Llama-3.1-8B-Instruct"))
    snapshot = tmp_path / "models--meta-llama--Llama-3.1-8B-Instruct" / "snapshots" / "abc"
    model_folder(snapshot)
    (tmp_path / "models--meta-llama--Llama-3.1-8B-Instruct" / "refs").mkdir()
    (tmp_path / "models--meta-llama--Llama-3.1-8B-Instruct" / "refs" / "main").write_text("abc")
    assert (
        resolve_model(ServiceSettings(model="meta-llama/Llama-3.1-8B-Instruct")).path
        == "meta-llama/Llama-3.1-8B-Instruct"
    )
