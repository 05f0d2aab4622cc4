"""schemathesis hooks (loaded through SCHEMATHESIS_HOOKS) that keep its cases cheap and harmless.

- Generation is bounded: `/generate` asks for at most `MAX_TOKENS` tokens (its default is 256 and the
  coverage phase tries the maximum, 2,048: minutes of CPU each). Values beyond the model's length stay,
  since they are refused before the engine runs.
- `/admin/adapters` never registers anything: a source that names an existing folder is pointed at one
  that does not exist, so every registration takes a refusal path (no such folder, outside adapter_roots,
  no such S3 objects, Hub offline) and the shared service keeps its adapters.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import schemathesis

from serving.paths import REPO_ROOT

MAX_TOKENS = 4
MAX_MODEL_LEN = 2048
MISSING_FOLDER = "/nonexistent/schemathesis-adapter"


def _is_existing_path(source: str) -> bool:
    try:
        return (REPO_ROOT / Path(source).expanduser()).exists()
    except (OSError, ValueError):  # names too long, NUL bytes: nothing there
        return False


@schemathesis.hook
def map_case(context: Any, case: Any) -> Any:
    body = case.body
    if not isinstance(body, dict):
        return case
    if case.path == "/generate":
        tokens = body.get("max_tokens")
        if tokens is None or (isinstance(tokens, int) and MAX_TOKENS < tokens <= MAX_MODEL_LEN):
            body["max_tokens"] = MAX_TOKENS
    adapter = body.get("adapter")
    if case.path == "/admin/adapters" and isinstance(adapter, dict):
        source = adapter.get("source")
        if isinstance(source, str) and _is_existing_path(source):
            adapter["source"] = MISSING_FOLDER
    return case
