"""LoRA adapters: fetched from a local folder, s3:// or the Hub, validated, loaded into the engine.

vLLM's `OpenAIServingModels` (the state behind /v1/models and the OpenAI `model` field) is the one
registry: adapters registered here are listed there and can be named by OpenAI clients, and the
service's own endpoints resolve the `adapter` field through it too.
"""

from __future__ import annotations

import json
import logging
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serving import s3
from serving.errors import NotFoundError, RequestError
from serving.model_source import ResolvedModel
from serving.settings import ADAPTER_NAME, ServiceSettings
from serving.sources import SourceKind, is_s3_uri, source_kind

if TYPE_CHECKING:
    from vllm.lora.request import LoRARequest


log = logging.getLogger(__name__)


@dataclass(frozen=True)
class AdapterInfo:
    name: str
    source: str
    path: str
    rank: int
    base_model: str | None


def _load_request_cls() -> Any:
    try:  # vLLM >= 0.30
        from vllm.entrypoints.serve.lora.protocol import LoadLoRAAdapterRequest
    except ImportError:  # vLLM 0.25
        from vllm.entrypoints.openai.protocol import LoadLoRAAdapterRequest
    return LoadLoRAAdapterRequest


def _same_model(declared: str, model: ResolvedModel) -> bool:
    """Adapters name their base by Hub id or by local path; compare the final path component."""
    tail = declared.rstrip("/").rsplit("/", 1)[-1].lower()
    return tail in {model.name.rsplit("/", 1)[-1].lower(), Path(model.path).name.lower()}


class AdapterRegistry:
    def __init__(self, settings: ServiceSettings, model: ResolvedModel, serving_models: Any) -> None:
        self.settings = settings
        self.model = model
        self.serving_models = serving_models
        self.cache = settings.cache_dir / "adapters"
        self.infos: dict[str, AdapterInfo] = {}
        # Folders named at start are trusted like adapter_roots: the operator chose them.
        configured = [Path(src).expanduser() for src in settings.adapters.values() if not is_s3_uri(src)]
        self.roots = [p.resolve() for p in (*settings.adapter_roots, *configured, self.cache)]

    # --- fetching ------------------------------------------------------------------------------
    def _local_path(self, source: str) -> Path:
        kind = source_kind(source)
        if kind is SourceKind.S3:
            try:
                return s3.fetch(source, self.cache / "s3", endpoint_url=self.settings.s3_endpoint_url, what="adapter")
            except (s3.S3DownloadError, ValueError) as exc:
                raise RequestError(str(exc), field="source") from exc
        if kind is SourceKind.HUB:
            return self._from_hub(source)
        resolved = Path(source).expanduser().resolve()
        if not any(resolved.is_relative_to(root) for root in self.roots):
            raise RequestError(
                f"{source} is outside the allowed adapter folders {[str(r) for r in self.roots]}; "
                "add its parent to the `adapter_roots` setting",
                field="source",
                status=403,
            )
        if not resolved.is_dir():
            raise NotFoundError(f"adapter folder {source} does not exist", field="source")
        return resolved

    def _from_hub(self, repo_id: str) -> Path:
        from huggingface_hub import snapshot_download

        try:
            return Path(snapshot_download(repo_id, cache_dir=self.cache / "hub"))
        except Exception as exc:  # the Hub client raises many types (offline, 404, auth)
            raise RequestError(
                f"could not fetch adapter {repo_id!r} from the Hugging Face Hub: {exc}", field="source"
            ) from exc

    # --- validation ----------------------------------------------------------------------------
    def _validate(self, name: str, source: str, path: Path) -> AdapterInfo:
        config_file = path / "adapter_config.json"
        if not config_file.is_file():
            raise RequestError(f"{source} has no adapter_config.json: not a PEFT LoRA adapter", field="source")
        if not (path / "adapter_model.safetensors").is_file():
            found = sorted(p.name for p in path.iterdir() if p.name.startswith("adapter_model"))
            raise RequestError(
                f"{source}: expected adapter_model.safetensors, found {found or 'no weights'}; "
                "only safetensors weights are loaded (convert .bin with peft's save_pretrained)",
                field="source",
            )
        config = json.loads(config_file.read_text())
        rank = int(config.get("r", 0))
        if rank > self.settings.max_lora_rank:
            raise RequestError(
                f"adapter rank {rank} exceeds max_lora_rank {self.settings.max_lora_rank}; "
                "restart the service with a larger max_lora_rank",
                field="source",
            )
        base = config.get("base_model_name_or_path")
        if base and not _same_model(base, self.model):
            raise RequestError(
                f"adapter was trained for base model {base!r}, but this service serves {self.model.name!r}",
                field="source",
            )
        return AdapterInfo(name=name, source=source, path=str(path), rank=rank, base_model=base)

    # --- registry ------------------------------------------------------------------------------
    async def register(self, name: str, source: str) -> AdapterInfo:
        if not self.settings.enable_lora:
            raise RequestError("LoRA is disabled on this service (enable_lora=false)", field="name", status=409)
        if not ADAPTER_NAME.match(name):
            raise RequestError("use 1-64 letters, digits, '.', '_' or '-'", field="name")
        if name == self.model.name:
            raise RequestError(f"{name!r} is the base model's name", field="name", status=409)
        info = self._validate(name, source, self._local_path(source))
        request_cls = _load_request_cls()
        # Re-registering a name replaces it where vLLM supports that (0.32); 0.25 refuses a duplicate.
        inplace = {"load_inplace": True} if "load_inplace" in request_cls.model_fields else {}
        request = request_cls(lora_name=name, lora_path=info.path, **inplace)
        result = await self.serving_models.load_lora_adapter(request)
        if not isinstance(result, str):  # an ErrorResponse
            error = getattr(result, "error", result)
            raise RequestError(
                f"vLLM could not load adapter {name!r}: {getattr(error, 'message', error)}", field="source"
            )
        replaced = name in self.infos
        self.infos[name] = info
        log.info("adapter %r %s from %s (rank %d)", name, "replaced" if replaced else "loaded", source, info.rank)
        return info

    async def resolve(self, name: str | None) -> LoRARequest | None:
        if not name or name == self.model.name:
            return None
        try:
            return self.serving_models.lora_requests[name]
        except KeyError:
            raise NotFoundError(
                f"unknown adapter {name!r}; registered: {sorted(self.infos) or 'none'}", field="adapter"
            ) from None

    def list(self) -> list[AdapterInfo]:
        return list(self.infos.values())
