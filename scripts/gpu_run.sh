#!/usr/bin/env bash
# On the GPU machine (its own python: torch, Lightning, timm, scipy): install the wheels that
# scripts/gpu_bundle.sh brought in .gpu/, put Fashion-MNIST under data/, run scripts/gpu_check.py
# and write its JSON to $OUT/gpu_check.json (or outputs/gpu_check.json).
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-$(command -v python || command -v python3)}"
# pure-Python wheels: unpacked, they import as installed (no pip or registry needed)
for wheel in .gpu/wheels/*.whl; do "$PY" -m zipfile -e "$wheel" .gpu/site; done
mkdir -p data/FashionMNIST/raw
cp -n .gpu/data/FashionMNIST/raw/*.gz data/FashionMNIST/raw/
export PYTHONPATH="$PWD/.gpu/site:$PWD/src${PYTHONPATH:+:$PYTHONPATH}"
nvidia-smi --query-gpu=name,memory.total,driver_version --format=csv || true
"$PY" scripts/gpu_check.py --out "${OUT:-outputs}/gpu_check.json" "$@"
