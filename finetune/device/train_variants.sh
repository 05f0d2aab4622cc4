#!/usr/bin/env bash
# A sweep of ViGGO adapter trainings on the offline GPU host, then each adapter measured the way the service runs
# it (vLLM, `python -m viggo.evaluate`, `--span-values off` and `redecode`). One phase per `run` call, on a machine
# where `bash bench/gpu_tasks.sh convert` (or `service`) has already converted the default model (bench/README.md) and the
# bundle is installed; the machine must stay warm in between:
#   bash finetune/device/train_variants.sh train   carry .device-carry/viggo-data ({train,valid}.csv): every variant
#                                                  below trains at once on the one GPU (host torch/transformers/peft,
#                                                  pydantic from the bundle's wheels); adapters come back as NAME.tar
#   bash finetune/device/train_variants.sh eval    each trained adapter and the shipped one on the valid split in
#                                                  vLLM (the bundle's), several engines at once, small memory each;
#                                                  adapters carried as .device-carry/viggo-adapters/NAME.tar (what
#                                                  `train` sent back) are evaluated too, for a machine gone cold
# Environment: OUT (what comes back), VARIANTS (names to train, default all), SPANS (eval: "plain span" by default;
# "plain" skips the span-values round).
set -uo pipefail
PHASE=$1
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
ROOT=$PWD; DATA=$ROOT/.device-carry/viggo-data; RUNS=/tmp/ft
M=$HOME/.cache/vllm-extraction/models/SmolLM2-135M-Instruct
[ -f "$M/model.safetensors" ] || { echo "no converted model at $M (run bench/gpu_tasks.sh convert first)"; exit 3; }

# name: extra `python -m finetune` flags; a last word "rN" trains from a copy of the config with rank N / alpha 2N.
declare -A FLAGS=(
  [e4]="--epochs 4"
  [e3]="--epochs 3"
  [e6b32]="--epochs 6 --batch-size 32"
  [e4b32lr15]="--epochs 4 --batch-size 32 --learning-rate 1.5e-3"
  [e4b32r32]="--epochs 4 --batch-size 32 r32"
  [e4b32lr15r32]="--epochs 4 --batch-size 32 --learning-rate 1.5e-3 r32"
  [e6b32r32]="--epochs 6 --batch-size 32 r32"
  [e4b32r64]="--epochs 4 --batch-size 32 r64"
  [e6b32lr15r32]="--epochs 6 --batch-size 32 --learning-rate 1.5e-3 r32"
  [e4b32lr2r32]="--epochs 4 --batch-size 32 --learning-rate 2e-3 r32"
)  # each takes ~20 GiB on an H100 (logits of a 49k vocabulary in fp32): more than three at once run out of memory

case $PHASE in
  train)
    python3 -m pip install -q --no-index --no-deps --target /tmp/ft-site /tmp/gb-bench/wheels/{pydantic,pydantic_core,annotated_types,typing_inspection}-*.whl || exit 4
    export PYTHONPATH=/tmp/ft-site
    nvidia-smi -L; python3 -c "import torch,transformers,peft;print(torch.__version__,transformers.__version__,peft.__version__)"
    SECONDS=0
    for name in ${VARIANTS:-${!FLAGS[@]}}; do
      flags=${FLAGS[$name]}; config=finetune/configs/viggo-smollm2.yaml
      if [[ $flags =~ \ r([0-9]+)$ ]]; then
        rank=${BASH_REMATCH[1]}; config=/tmp/viggo-r$rank.yaml; flags=${flags% r*}
        sed -e "s/^  r: [0-9]* .*/  r: $rank/" -e "s/^  alpha: [0-9]*/  alpha: $((2 * rank))/" \
          finetune/configs/viggo-smollm2.yaml >"$config"
        echo "$name: $(grep -E "^  (r|alpha):" "$config" | tr -s ' \n' ' ')"
      fi
      # shellcheck disable=SC2086
      timeout 560 python3 -m finetune --config "$config" --base-model "$M" --base-model-name \
        HuggingFaceTB/SmolLM2-135M-Instruct --data "$DATA" --output-dir "$RUNS/$name" $flags >"$OUT/train-$name.log" 2>&1 &
    done
    wait
    echo "trained in ${SECONDS}s"
    for run in "$RUNS"/*/; do
      name=$(basename "$run"); tail -2 "$OUT/train-$name.log"
      [ -f "$run/adapter/adapter_model.safetensors" ] && tar -C "$run" -cf "$OUT/$name.tar" adapter
    done ;;
  eval)
    [ -d /tmp/site-bench/vllm ] || { echo "bundle not installed (machine went cold?)"; exit 3; }
    export PYTHONPATH=/tmp/site-bench VLLM_USE_FLASHINFER_SAMPLER=0
    # Several engines share the GPU: each takes a small slice, and eager mode skips minutes of compilation.
    export GPU_MEMORY_UTILIZATION=0.08 ENFORCE_EAGER=true
    for tar in "$ROOT"/.device-carry/viggo-adapters/*.tar; do
      [ -f "$tar" ] && mkdir -p "$RUNS/$(basename "$tar" .tar)" && tar -xf "$tar" -C "$RUNS/$(basename "$tar" .tar)"
    done
    names=(shipped); ln -sfn "$ROOT/finetune/adapters/viggo-smollm2" /tmp/ft-shipped-adapter
    for run in "$RUNS"/*/; do [ -f "$run/adapter/adapter_model.safetensors" ] && names+=("$(basename "$run")"); done
    SECONDS=0
    # The model's own values ("off") and values from the sentence (the service's default, "redecode").
    rounds=(off); [[ ${SPANS:-plain span} == *span* ]] && rounds+=(redecode)
    for span in "${rounds[@]}"; do
      for name in "${names[@]}"; do
        path=$RUNS/$name/adapter; [ "$name" = shipped ] && path=/tmp/ft-shipped-adapter
        tag=$name; [ "$span" = off ] || tag=$name-span
        timeout 280 python3 -m viggo.evaluate --data "$DATA" --adapter "viggo=$path" --max-num-seqs 256 \
          --span-values "$span" --out "$OUT/preds-$tag.jsonl" --json-out "$OUT/eval-$tag.json" >"$OUT/eval-$tag.log" 2>&1 &
      done
      wait
      echo "evaluated span values $span at ${SECONDS}s"
    done
    for f in "$OUT"/eval-*.json; do
      python3 -c "import json,sys; d=json.load(open(sys.argv[1])); print(sys.argv[1].split('/')[-1], d.get('exact_match'), d.get('slot_f1'), d.get('act_accuracy'))" "$f"
    done ;;
esac
exit 0
