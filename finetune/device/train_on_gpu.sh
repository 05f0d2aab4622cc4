#!/usr/bin/env bash
# How finetune/adapters/viggo-smollm2 was trained on the offline GPU host (see finetune/README.md).
# Expects from an earlier call /tmp/carry/gguf.part00, and here .device-carry/{p2,whl,base}.
set -uo pipefail
export PYTHONUNBUFFERED=1 HF_HUB_OFFLINE=1 TOKENIZERS_PARALLELISM=false
OUT=${OUT:-/tmp/out}; mkdir -p "$OUT"
exec > >(tee "$OUT/log.txt") 2>&1
C=.device-carry
[ -f /tmp/carry/gguf.part00 ] || { echo "NO PART 1 in /tmp/carry (machine went cold)"; exit 3; }
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site $C/whl/*.whl || exit 4
export PYTHONPATH=/tmp/site
mkdir -p /tmp/gguf && cat /tmp/carry/gguf.part00 $C/p2/gguf.part01 > /tmp/gguf/model.gguf
echo "gguf sha256 $(sha256sum /tmp/gguf/model.gguf | cut -c1-64) expected $(cat $C/base/gguf.sha256)"
nvidia-smi -L; python3 -c "import torch,transformers,peft,accelerate;print(torch.__version__,transformers.__version__,peft.__version__,accelerate.__version__)"
SECONDS=0
python3 finetune/device/convert_gguf.py /tmp/gguf/model.gguf /tmp/base $C/base $C/base/weights.sha256 || exit 5
echo "converted in ${SECONDS}s"
NAME=HuggingFaceTB/SmolLM2-135M-Instruct
python3 -m finetune --config finetune/configs/viggo-smollm2.yaml --base-model /tmp/base --base-model-name $NAME \
  --data $C/base/data --output-dir /tmp/runA || exit 6
echo "trained A at ${SECONDS}s"
python3 -m finetune.evaluate --base-model /tmp/base --adapter /tmp/runA/adapter --data $C/base/data --batch-size 96 \
  --out /tmp/runA/adapter/eval_valid.json | tail -3
python3 -m finetune.evaluate --base-model /tmp/base --data $C/base/data --batch-size 96 --out /tmp/eval_base.json | tail -3
cp /tmp/eval_base.json /tmp/runA/adapter/eval_valid_base_model.json
cp /tmp/runA/trainer_state.json /tmp/runA/adapter/ 2>/dev/null
tar -C /tmp/runA -cf "$OUT/runA.tar" adapter
echo "A done at ${SECONDS}s"
EM=$(python3 -c "import json;print(json.load(open('/tmp/runA/adapter/eval_valid.json'))['exact_match'])")
if python3 -c "import sys;sys.exit(0 if $EM < 0.5 and $SECONDS < 300 else 1)"; then
  echo "A exact match $EM < 0.5: variant B, 4 epochs"
  python3 -m finetune --config finetune/configs/viggo-smollm2.yaml --base-model /tmp/base --base-model-name $NAME \
    --data $C/base/data --output-dir /tmp/runB --epochs 4 || exit 7
  python3 -m finetune.evaluate --base-model /tmp/base --adapter /tmp/runB/adapter --data $C/base/data --batch-size 96 \
    --out /tmp/runB/adapter/eval_valid.json | tail -3
  cp /tmp/eval_base.json /tmp/runB/adapter/eval_valid_base_model.json; cp /tmp/runB/trainer_state.json /tmp/runB/adapter/
  tar -C /tmp/runB -cf "$OUT/runB.tar" adapter
fi
echo "all done at ${SECONDS}s"
