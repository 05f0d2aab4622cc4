"""NER's label scores on this CPU: µs per answer, aligned by vLLM's decoded tokens against decoding again.

Answers are label objects for the candidates of the frozen held-out NER texts (random labels: the alignment cost
depends on the text, not on the labels), their token ids from the default model's tokenizer with the stop token last,
and log-probabilities whose `decoded_token` is what vLLM puts there (`convert_ids_list_to_tokens`). Prints the best of
five passes over all answers for each way, and whether both give the same scores.

    python -m bench.label_scores
"""

from __future__ import annotations

import math
import random
import time
from collections.abc import Sequence
from typing import Any


def main() -> int:
    from transformers import AutoTokenizer
    from vllm.logprobs import Logprob
    from vllm.tokenizers.detokenizer_utils import convert_ids_list_to_tokens

    from bench.task_baseline import ner_texts
    from ner.candidates import propose
    from ner.decoding import NAME_LABELS, answer_json, label_scores
    from ner.resolution import labelling_names
    from serving.engine import resolve_model
    from serving.settings import ServiceSettings

    tokenizer: Any = AutoTokenizer.from_pretrained(resolve_model(ServiceSettings()).path)
    rng = random.Random(0)
    answers: list[tuple[str, list[int], list[dict[int, Any]], list[dict[int, Any]]]] = []
    for text in ner_texts():
        names = labelling_names(propose(text))
        if not names:
            continue
        output = answer_json({name: rng.choice(NAME_LABELS) for name in names})
        ids = [*tokenizer.encode(output, add_special_tokens=False), tokenizer.eos_token_id]
        pieces = convert_ids_list_to_tokens(tokenizer, ids)
        spelled = [{t: Logprob(math.log(rng.uniform(0.3, 1.0)), 1, p)} for t, p in zip(ids, pieces, strict=True)]
        bare = [{t: Logprob(chosen[t].logprob)} for t, chosen in zip(ids, spelled, strict=True)]  # no decoded text
        answers.append((output, ids, spelled, bare))

    def decode(piece: Sequence[int]) -> str:
        return str(tokenizer.decode(list(piece), skip_special_tokens=True, clean_up_tokenization_spaces=False))

    def best_us(spelled: bool) -> float:
        passes = []
        for _ in range(5):
            started = time.perf_counter()
            for output, ids, with_text, bare in answers:
                label_scores(output, ids, with_text if spelled else bare, decode)
            passes.append(time.perf_counter() - started)
        return min(passes) / len(answers) * 1e6

    same = all(label_scores(o, i, s, decode) == label_scores(o, i, b, decode) for o, i, s, b in answers)
    print(f"[label-scores] {len(answers)} answers: decoding again {best_us(False):.0f} µs per answer, "
          f"vLLM's decoded tokens {best_us(True):.0f} µs; same scores: {same}")  # fmt: skip
    return 0 if same else 1


if __name__ == "__main__":
    raise SystemExit(main())
