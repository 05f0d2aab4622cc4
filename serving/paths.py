"""Where the repository and the data beside it live (`../shared/data` next to the checkout)."""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parent.parent
SHARED_DATA = REPO_ROOT.parent / "shared" / "data"
VIGGO_DATA = SHARED_DATA / "viggo"
NER_DEV_SET = SHARED_DATA / "ner" / "dev.jsonl"
# Converted and downloaded models, adapters and the result spool (the `cache_dir` setting's default).
DEFAULT_CACHE_DIR = Path.home() / ".cache" / "vllm-extraction"
