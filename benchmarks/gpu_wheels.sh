#!/usr/bin/env bash
# Wheels for the device machine (benchmarks/gpu_igsm.py): its Python 3.12 has torch, numpy, pyarrow, pyyaml,
# tokenizers, safetensors, tqdm and matplotlib, but not polars or pydantic. Run here, in the repo root, with
# the package registry reachable; writes .whl/ (ignored through .git/info/exclude), which a device call
# carries. Versions: the ones this repo's venv resolves (pyproject.toml pins polars).
set -euo pipefail
cd "$(dirname "$0")/.."
grep -qx '/.whl/' .git/info/exclude 2>/dev/null || echo '/.whl/' >> .git/info/exclude
py=${PYTHON:-python3}
ver() { "$py" -c "import importlib.metadata as m; print(m.version('$1'))"; }
mkdir -p .whl
for pkg in polars polars-runtime-32 pydantic pydantic-core annotated-types typing-inspection typing-extensions; do
  "$py" -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
    --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
    -d .whl "$pkg==$(ver "$pkg")"
done
du -sh .whl
