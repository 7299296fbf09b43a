#!/usr/bin/env bash
# The GPU check in one command, for a lent GPU machine with its own python3 + torch (no network, no
# TensorRT): torch CUDA fp16 eager and with CUDA graphs (--compile: torch.compile too) for ViT-B/32 +
# decoder and NOVIC's ViT-H-14-378 shapes, batch 1 and 8, agreement with fp32 on the CPU, one table.
#   bash scripts/device_check.sh                 # on the GPU machine (about 3-5 minutes)
#   bash scripts/device_check.sh --device cpu --models b32 --batches 1 --repeat 2   # here (the test)
# A carried open_clip wheel is used when PYTHONPATH (or a wheels/ folder beside this script) has it.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
PYTHON=${PYTHON:-python3}
# Carried pure-Python wheels (open_clip and its small dependencies), if any: importable without installing.
if compgen -G "$here/wheels/*.whl" > /dev/null; then
  for w in "$here"/wheels/*.whl; do PYTHONPATH="$w${PYTHONPATH:+:$PYTHONPATH}"; done
  export PYTHONPATH
fi
exec "$PYTHON" "$here/device_check.py" "$@"
