#!/usr/bin/env bash
# Build an offline wheelhouse: radlens + every runtime and test dependency as wheels.
#
#   packaging/build_wheelhouse.sh [WHEELHOUSE]        (default ./wheelhouse)
#
# Needs network access once, on a machine with the same OS, CPU architecture and Python
# minor version as the training station. torch comes from the PyTorch CPU index (a bare
# "torch" from PyPI pulls several GB of CUDA libraries); set TORCH_VARIANT=cu126 (or another
# CUDA tag) for a GPU wheelhouse - see packaging/README.md.
set -euo pipefail
cd "$(dirname "$0")/.."
WH=$(mkdir -p "${1:-wheelhouse}" && cd "${1:-wheelhouse}" && pwd)
PY=${PYTHON:-python3}
TORCH_VERSION=${TORCH_VERSION:-2.13.0}
TORCH_VARIANT=${TORCH_VARIANT:-cpu}
# TORCH_INDEX="" uses only pip's configured sources (a local mirror or --find-links folder
# that already holds the +cpu wheel), for build machines that cannot reach the PyTorch index.
TORCH_INDEX=${TORCH_INDEX-https://download.pytorch.org/whl/$TORCH_VARIANT}

BUILD_VENV=$(mktemp -d)/venv
trap 'rm -rf "$(dirname "$BUILD_VENV")"' EXIT
"$PY" -m venv "$BUILD_VENV"
PIP=("$BUILD_VENV/bin/python" -m pip --disable-pip-version-check)
"${PIP[@]}" install -q --upgrade pip setuptools wheel

# pip, setuptools and wheel themselves, so the offline venv can be upgraded and can build.
"${PIP[@]}" download -q --dest "$WH" pip setuptools wheel

# The project, built from this checkout (resources/models travel inside it).
"${PIP[@]}" wheel -q --no-deps --wheel-dir "$WH" .

# torch pinned to the chosen variant, then everything radlens[test] and [packaging] need.
# The constraint makes pip take the +cpu (or +cuXXX) build from the PyTorch index only.
CONSTRAINTS=$(mktemp)
echo "torch==${TORCH_VERSION}+${TORCH_VARIANT}" >"$CONSTRAINTS"
EXTRA=()
[ -n "$TORCH_INDEX" ] && EXTRA=(--extra-index-url "$TORCH_INDEX")
"${PIP[@]}" download -q --dest "$WH" --only-binary=:all: "${EXTRA[@]}" \
  -c "$CONSTRAINTS" --find-links "$WH" "radlens[test,packaging]"
rm -f "$CONSTRAINTS"
echo "wheelhouse: $WH ($(ls "$WH" | wc -l) files, $(du -sh "$WH" | cut -f1))"
