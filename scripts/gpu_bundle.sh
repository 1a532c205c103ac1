#!/usr/bin/env bash
# Prepare .gpu/ (ignored by git) for scripts/gpu_run.sh on a GPU machine without registry access:
# the wheels its image lacks (hydra-core, omegaconf, antlr4-python3-runtime, for Python 3.12) and
# Fashion-MNIST's four .gz files in torchvision's layout. Then, with the device tool:
#   run(command="bash scripts/gpu_run.sh", carry=[".gpu"], timeout_s=560)
set -euo pipefail
cd "$(dirname "$0")/.."
PY="${PY:-.venv/bin/python}"
HYDRA="$("$PY" -c 'import hydra; print(hydra.__version__)')"
OMEGACONF="$("$PY" -c 'import omegaconf; print(omegaconf.__version__)')"
rm -rf .gpu/wheels && mkdir -p .gpu/wheels .gpu/data/FashionMNIST/raw
"$PY" -m pip download --quiet --no-deps --only-binary=:all: --python-version 3.12 \
    -d .gpu/wheels "hydra-core==$HYDRA" "omegaconf==$OMEGACONF"
"$PY" -m pip wheel --quiet --no-deps -w .gpu/wheels antlr4-python3-runtime==4.9.3
found=""
for folder in data/FashionMNIST/raw /usr/share/datasets/fashion-mnist; do
    if ls "$folder"/t10k-images-idx3-ubyte.gz >/dev/null 2>&1; then found="$folder"; break; fi
done
if [ -z "$found" ]; then
    echo "error: Fashion-MNIST's .gz files are in neither data/FashionMNIST/raw nor" \
         "/usr/share/datasets/fashion-mnist (apt-get install dataset-fashion-mnist)" >&2
    exit 1
fi
cp "$found"/*-ubyte.gz .gpu/data/FashionMNIST/raw/
ls .gpu/wheels && du -sh .gpu
