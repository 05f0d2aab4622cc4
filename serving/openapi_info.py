"""The `info` of the OpenAPI document (Swagger UI's heading): the service's own title, description and version.

BentoML 1.4 fills it with the service's name, a generic "Machine Learning Service created with BentoML"
README, the "BentoML Team" contact and the Bento's version, the string "None" when served from source
(`_bentoml_sdk/service/openapi.py: generate_spec`). vLLM's OpenAI-compatible API at /v1 is not in the
document (BentoML lists only FastAPI apps it mounts itself), so the description documents and links it.
"""

from __future__ import annotations

import tomllib
from typing import Any

from serving.paths import REPO_ROOT

TITLE = "vLLM extraction service"
VLLM_OPENAI_DOCS = "https://docs.vllm.ai/en/latest/serving/openai_compatible_server.html"
OPENAI_API_REFERENCE = "https://platform.openai.com/docs/api-reference"

DESCRIPTION = f"""\
A large language model served by [vLLM](https://docs.vllm.ai) on one engine, and extraction tools built on it.

| endpoint | what it does |
|---|---|
| `POST /generate` | streaming text for a prompt or chat messages; disconnecting aborts the engine request |
| `POST /extract_entities`, `POST /extract_entities_batch` | persons, organizations, locations, dates; with spans |
| `POST /viggo` | the ViGGO meaning representation of a sentence, always well-formed |
| `POST /admin/adapters`, `POST /admin/adapters/list` | register and list LoRA adapters |
| `GET /readyz`, `GET /livez`, `GET /metrics` | readiness, liveness, Prometheus (BentoML's and vLLM's `vllm:*`) |

### OpenAI-compatible API at `/v1`

vLLM's own OpenAI server runs on the same engine (not listed below: it is vLLM's app, mounted as is).
Any OpenAI client works with `base_url` set to this server's address plus `/v1`:

| route | what it does |
|---|---|
| `POST /v1/chat/completions` | chat completions, streaming or not; structured output (`response_format`) |
| `POST /v1/completions` | text completions |
| `GET /v1/models` | the base model and the LoRA adapters loaded; an adapter's name is a valid `model` |

Parameters: the [OpenAI API reference]({OPENAI_API_REFERENCE}) and
[vLLM's OpenAI-compatible server]({VLLM_OPENAI_DOCS}) (vLLM's extra sampling and structured-output parameters).

### Calling it

When the service has an API key, every endpoint but the health checks and this page needs
`Authorization: Bearer <key>`. Errors have one OpenAI-shaped body,
`{{"error": {{"message", "type", "param", "code"}}}}`, whose `param` names the field at fault; 429 and 503
carry `Retry-After`.
"""


def project_version() -> str | None:
    """The version in pyproject.toml (the Bento carries the file, see bentofile.yaml)."""
    try:
        with (REPO_ROOT / "pyproject.toml").open("rb") as file:
            return str(tomllib.load(file)["project"]["version"])
    except FileNotFoundError:
        return None


def service_info(bentoml_info: dict[str, Any]) -> dict[str, Any]:
    """Our `info` object in place of BentoML's; its version names the Bento when BentoML knows one.

    E.g. `0.1.0` served from source, `0.1.0+bento.ttqgmvq5ukl2kbdn` from a built Bento (a PEP 440
    local version: the release, then the build that runs).
    """
    bento = bentoml_info.get("version")
    bento = None if bento in (None, "None", "") else str(bento)
    project = project_version()
    version = f"{project}+bento.{bento}" if project and bento else project or bento or "unknown"
    return {"title": TITLE, "description": DESCRIPTION, "version": version}
