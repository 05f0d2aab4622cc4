"""Where the served model comes from: a Hugging Face id, a local folder, s3://, or the offline default."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from serving import default_model, s3
from serving.settings import ServiceSettings
from serving.sources import SourceKind, s3_artifact_name, source_kind


class ModelNotFoundError(RuntimeError):
    """The configured model could not be located."""


@dataclass(frozen=True)
class ResolvedModel:
    path: str  # what vLLM loads: a local folder, or a Hub id it downloads itself
    name: str  # what clients call it (/v1/models, the OpenAI `model` field)


def _check_model_dir(path: Path, origin: str) -> None:
    if not (path / "config.json").is_file():
        raise ModelNotFoundError(f"{origin}: {path} has no config.json; expected a Hugging Face model folder")


def resolve_model(settings: ServiceSettings) -> ResolvedModel:
    spec = settings.model
    if spec is None:
        path = default_model.ensure_default_model(settings.cache_dir)
        return ResolvedModel(str(path), settings.served_model_name or default_model.SERVED_NAME)
    kind = source_kind(spec)
    if kind is SourceKind.S3:
        local = s3.fetch(spec, settings.cache_dir / "models", endpoint_url=settings.s3_endpoint_url, what="model")
        _check_model_dir(local, spec)
        return ResolvedModel(str(local), settings.served_model_name or s3_artifact_name(spec))
    if kind is SourceKind.LOCAL:
        local = Path(spec).expanduser()
        if not local.exists():
            raise ModelNotFoundError(
                f"model {spec!r}: no such folder, and not a Hugging Face repo id (owner/name) or s3://bucket/prefix"
            )
        _check_model_dir(local, spec)
        return ResolvedModel(str(local.resolve()), settings.served_model_name or local.resolve().name)
    _check_offline_hub_model(spec)
    return ResolvedModel(spec, settings.served_model_name or spec)


def _check_offline_hub_model(repo_id: str) -> None:
    """With HF_HUB_OFFLINE set, a Hub model must already be in the local cache: say so, naming it, at once."""
    from huggingface_hub import constants, try_to_load_from_cache

    if constants.HF_HUB_OFFLINE and not isinstance(try_to_load_from_cache(repo_id, "config.json"), str):
        raise ModelNotFoundError(
            f"model {repo_id!r} is not in the Hugging Face cache ({constants.HF_HUB_CACHE}) and HF_HUB_OFFLINE is "
            "set: download it there first, give a local folder or s3:// URI instead, or unset HF_HUB_OFFLINE"
        )
