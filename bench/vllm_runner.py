"""Runs vLLM's own `vllm bench serve` (vllm.benchmarks.serve) once per concurrency, in one process.

Same code as `python -m vllm.entrypoints.cli.main bench serve ...`, but vLLM is imported once instead
of once per concurrency (10-30 s each). Used as a subprocess by bench.load:

    python -m bench.vllm_runner OUT.json C1,C2,... NUM_PROMPTS_EXPR -- <bench serve flags>

NUM_PROMPTS_EXPR: 'max(8,4*C)'-style expression of C, evaluated per concurrency.
The API key, if any, comes from the OPENAI_API_KEY environment variable (vLLM's own convention).
"""

from __future__ import annotations

import json
import sys
import time

from bench.load import prompt_count


def main(argv: list[str]) -> int:
    out, concurrencies, prompts_expr = argv[0], [int(c) for c in argv[1].split(",")], argv[2]
    flags = argv[argv.index("--") + 1 :]
    from vllm.benchmarks.serve import add_cli_args
    from vllm.benchmarks.serve import main as bench_main
    from vllm.utils.argparse_utils import FlexibleArgumentParser

    results = []
    for c in concurrencies:
        n = prompt_count(prompts_expr, c)
        parser = FlexibleArgumentParser()
        add_cli_args(parser)
        args = parser.parse_args([*flags, "--max-concurrency", str(c), "--num-prompts", str(n)])
        started = time.time()
        result = bench_main(args)
        result = {k: v for k, v in result.items() if not isinstance(v, list)}  # drop per-request arrays
        result.update(max_concurrency=c, num_prompts=n, wall_s=round(time.time() - started, 2))
        results.append(result)
        with open(out, "w") as f:  # after each level: a timeout still leaves what finished
            json.dump(results, f, indent=1, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
