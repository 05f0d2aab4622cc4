"""Every setting of the service, validated once.

Values come from `bentoml serve --arg name=value` (through `bentoml.use_arguments`), then from
environment variables of the same name (case-insensitive, e.g. `MODEL`, `API_KEY`), then defaults.
"""

from __future__ import annotations

import json
import re
import shlex
from pathlib import Path
from typing import Annotated, Any

from annotated_types import Ge, Gt, Le
from pydantic import Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from serving.paths import DEFAULT_CACHE_DIR, REPO_ROOT
from viggo.grammar import SpanValues

BUNDLED_VIGGO_ADAPTER = REPO_ROOT / "finetune" / "adapters" / "viggo-smollm2"
BUNDLED_NER_ADAPTER = REPO_ROOT / "finetune" / "adapters" / "ner-smollm2"
ADAPTER_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _parse_mapping(value: Any) -> Any:
    """Accept a dict, a JSON object, or `name=source,name2=source2` (what `--arg` gives)."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if not text:
        return {}
    if text.startswith("{"):
        return json.loads(text)
    pairs = [item.split("=", 1) for item in text.split(",") if item.strip()]
    if any(len(pair) != 2 for pair in pairs):
        raise ValueError("expected a JSON object or 'name=source,name2=source2'")
    return {name.strip(): source.strip() for name, source in pairs}


def _parse_list(value: Any) -> Any:
    """Accept a list, a JSON array, or a comma-separated string."""
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith("["):
        return json.loads(text)
    return [item.strip() for item in text.split(",") if item.strip()]


class ServiceSettings(BaseSettings):
    model_config = SettingsConfigDict(extra="forbid", case_sensitive=False, populate_by_name=True)

    # --- model -------------------------------------------------------------------------------
    model: str | None = Field(
        None,
        description="Hugging Face repo id, local directory, or s3://bucket/prefix (a folder of "
        "model files or a .tar/.tar.gz). Empty: the offline default SmolLM2-135M-Instruct.",
    )
    served_model_name: str | None = Field(None, description="Name in /v1/models; default: derived from `model`.")
    cache_dir: Path = Field(DEFAULT_CACHE_DIR, description="Where downloaded and converted models and adapters live.")

    # --- engine ------------------------------------------------------------------------------
    dtype: str = "auto"
    max_model_len: Annotated[int, Ge(64)] = 2048
    gpu_memory_utilization: Annotated[float, Gt(0), Le(1)] | None = Field(
        None, description="Fraction of GPU memory (on CPU: of RAM) vLLM may take. Default 0.9 on GPU, 0.3 on CPU."
    )
    kv_cache_memory_bytes: Annotated[int, Ge(1 << 20)] | None = Field(
        None, description="Fixed KV-cache size in bytes; overrides gpu_memory_utilization's sizing."
    )
    max_num_seqs: Annotated[int, Ge(1), Le(4096)] = 256
    enable_prefix_caching: bool = True
    tensor_parallel_size: Annotated[int, Ge(1)] = 1
    enforce_eager: bool = False
    seed: int = 0
    vllm_args: Annotated[list[str], NoDecode] = Field(
        default_factory=list,
        description="Extra `vllm serve` flags passed through as is, e.g. ['--max-num-batched-tokens', '8192'].",
    )

    # --- LoRA --------------------------------------------------------------------------------
    enable_lora: bool = True
    max_loras: Annotated[int, Ge(1)] = 4
    max_lora_rank: Annotated[int, Ge(1), Le(512)] = 32
    adapters: Annotated[dict[str, str], NoDecode] = Field(
        default_factory=dict, description="Adapters registered at start: name -> local dir, s3:// URI or Hub repo id."
    )
    adapter_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Local folders adapters may be loaded from (besides the adapter cache). Empty: only the cache and "
        "the folders named in `adapters`.",
    )
    adapter_store: str | None = Field(
        None,
        description="Where adapters are loaded from on first use: s3://bucket/prefix, a local folder, or a Hugging "
        "Face org. A request naming adapter `x` that is not loaded loads `{adapter_store}/x/`, unregistered.",
    )
    adapter_cache_bytes: Annotated[int, Ge(1 << 20)] = Field(
        20 << 30,
        description="Disk (and engine) budget for adapters loaded from adapter_store; beyond it the least recently "
        "used one is unloaded from the engine and its downloaded copy deleted.",
    )
    max_adapter_bytes: Annotated[int, Ge(1 << 10)] = Field(
        4 << 30,
        description="Largest adapter (all its files) accepted, registered or loaded on demand: checked before "
        "downloading (S3 listing sizes, Hub metadata) and after; beyond it 413.",
    )
    viggo_adapter: str | None = Field(None, description="Adapter used by /viggo when a request names none.")
    ner_adapter: str | None = Field(
        None,
        description="Tuned labelling adapter (finetune/configs/ner-smollm2.yaml) used by NER when a request names "
        "none; it is asked with the short prompt it was trained on. Unset: the shipped `ner` with the default model "
        "(`bundled_adapters`), else the base model with its few-shot prompt.",
    )
    viggo_span_values: SpanValues = Field(
        "redecode",
        description="Open-slot values of /viggo (name, developer, dates, specifier) from runs of the sentence's words. "
        "`redecode`: an answer with a value that is not such a run is decoded again under a grammar of the "
        "sentence's words (the same MRs as `always` for a second decoding of the few answers that need it); "
        "`always`: every request under its own grammar (a compilation per request; `grounded` then never flags an "
        "invented value); `off`: the model's values as they come. `true`/`false` mean `always`/`off`.",
    )
    bundled_adapters: bool = Field(
        True,
        description="With the offline default model, register the adapters shipped in finetune/adapters (`viggo`, "
        "and `ner` where it is shipped) and make each its task's default (unless `adapters`, `viggo_adapter` or "
        "`ner_adapter` say otherwise).",
    )

    # --- API ---------------------------------------------------------------------------------
    api_key: SecretStr | None = Field(
        None, description="When set, every endpoint but health checks needs `Authorization: Bearer <key>`."
    )
    trace_requests: bool = Field(
        False,
        description="Let BentoML's OpenTelemetry middleware trace every endpoint but the streaming ones (task "
        "endpoints, jobs, admin, health). Its per-request spans cost ~10% of the event loop at /extract_entities "
        "concurrency 256 on an H100 even when BentoML's sample_rate is 0 and nothing is exported "
        "(serving/tracing.py); set it with a BentoML tracing exporter and sample_rate.",
    )
    trace_streams: bool = Field(
        False,
        description="Let BentoML's OpenTelemetry middleware trace the streaming endpoints (/v1 and /generate). It "
        "opens a span per streamed chunk, which cost /generate a third of its throughput at concurrency 256 "
        "(bench/results/h100-attribution.md); vLLM can trace its own requests instead (`--otlp-traces-endpoint` "
        "in vllm_args).",
    )
    max_concurrency: Annotated[int, Ge(1)] | None = Field(
        None,
        description="Requests admitted at once (streams included); beyond it a fast 429 with Retry-After. "
        "Default: 2 x max_num_seqs (one batch running, one waiting).",
    )
    shutdown_grace_s: Annotated[float, Ge(0)] = Field(
        25.0,
        description="On SIGTERM, how long requests in flight may run to completion (and the result spool "
        "may flush) before the engine stops. Keep it below the orchestrator's grace period (Kubernetes: 30 s).",
    )
    request_timeout_s: Annotated[int, Ge(1)] = Field(
        600,
        description="BentoML's traffic.timeout: seconds until a request's response starts (all of it, for one "
        "that is not streamed), then a 504; a stream that has started runs to its end (serving/request_timeout.py).",
    )
    max_text_chars: Annotated[int, Ge(1)] = Field(
        200_000,
        description="Longest text (characters) NER takes; a long one is labelled in parts of whole sentences that "
        "fit the model's context, all parts at once on the engine.",
    )
    max_batch_items: Annotated[int, Ge(1)] = 256
    max_request_bytes: Annotated[int, Ge(1024)] = Field(
        8 << 20, description="Largest request body accepted on any endpoint (/v1 included); beyond it 413."
    )
    max_n: Annotated[int, Ge(1)] = Field(
        16, description="Largest `n` and `best_of` of a /v1 request (completions generated for one request)."
    )
    max_stop_strings: Annotated[int, Ge(1)] = Field(
        16, description="Most stop strings one request may give (`stop` of /generate and of /v1)."
    )
    max_structured_output_bytes: Annotated[int, Ge(256)] = Field(
        64 << 10,
        description="Largest structured-output constraint of a /v1 request (JSON schema, grammar, regex, choices, "
        "tools; size of its JSON): compiling a huge one stalls the engine for everyone.",
    )

    # --- results -----------------------------------------------------------------------------
    results_uri: str = Field("results", description="s3://bucket/prefix or a local directory for persisted results.")
    s3_endpoint_url: str | None = Field(None, description="For MinIO and other S3-compatible stores.")
    persist_results: bool = True
    spool_dir: Path | None = Field(
        None,
        description="Where results wait when S3 is down; default cache_dir/spool. In a container, mount a volume "
        "that outlives the replica here: a replica started on it uploads what a lost one left.",
    )

    # --- extraction jobs ---------------------------------------------------------------------
    job_concurrency: Annotated[int, Ge(1)] | None = Field(
        None,
        description="Records of an extraction job in flight at once. Default: half of max_num_seqs. vLLM's "
        "priority scheduling puts interactive requests before a job's waiting records but never preempts a "
        "running one, so a job that fills the whole batch makes interactive requests wait for a free slot "
        "(docs/jobs.md measured TTFT p50 3.4x idle that way); the free half keeps them prompt.",
    )
    job_input_roots: Annotated[list[Path], NoDecode] = Field(
        default_factory=list,
        description="Local folders extraction jobs may read their input from (s3:// inputs need none). Empty: "
        "jobs read only from S3.",
    )

    @field_validator("adapters", mode="before")
    @classmethod
    def _adapters_mapping(cls, value: Any) -> Any:
        return _parse_mapping(value)

    @field_validator("adapter_roots", "job_input_roots", mode="before")
    @classmethod
    def _comma_list(cls, value: Any) -> Any:
        return _parse_list(value)

    @field_validator("viggo_span_values", mode="before")
    @classmethod
    def _span_values_flag(cls, value: Any) -> Any:
        # The setting was a flag: true meant a grammar per request.
        flags = {"true": "always", "false": "off"}
        return flags.get(str(value).strip().lower(), value) if isinstance(value, bool | str) else value

    @field_validator("vllm_args", mode="before")
    @classmethod
    def _shell_words(cls, value: Any) -> Any:
        if isinstance(value, str) and not value.lstrip().startswith("["):
            return shlex.split(value)
        return _parse_list(value)

    @field_validator("adapters")
    @classmethod
    def _adapter_names(cls, value: dict[str, str]) -> dict[str, str]:
        for name in value:
            if not ADAPTER_NAME.match(name):
                raise ValueError(f"adapter name {name!r} must be 1-64 letters, digits, '.', '_' or '-'")
        return value

    @field_validator(
        "model", "served_model_name", "viggo_adapter", "ner_adapter", "adapter_store", "s3_endpoint_url", mode="before"
    )
    @classmethod
    def _empty_is_none(cls, value: Any) -> Any:
        return None if isinstance(value, str) and not value.strip() else value

    @model_validator(mode="after")
    def _bundled_adapters(self) -> ServiceSettings:
        # The shipped adapters were trained on the default model only: never offer them for another.
        if not (self.bundled_adapters and self.model is None and self.enable_lora):
            return self
        if BUNDLED_VIGGO_ADAPTER.is_dir():
            self.adapters.setdefault("viggo", str(BUNDLED_VIGGO_ADAPTER))
            if self.viggo_adapter is None:
                self.viggo_adapter = "viggo"
        if BUNDLED_NER_ADAPTER.is_dir():
            self.adapters.setdefault("ner", str(BUNDLED_NER_ADAPTER))
            if self.ner_adapter is None:
                self.ner_adapter = "ner"
        return self

    @property
    def admitted_concurrency(self) -> int:
        return self.max_concurrency or 2 * self.max_num_seqs

    @property
    def resolved_job_concurrency(self) -> int:
        return self.job_concurrency or max(1, self.max_num_seqs // 2)

    @property
    def resolved_spool_dir(self) -> Path:
        return self.spool_dir or self.cache_dir / "spool"
