#!/usr/bin/env bash
# Install RadLens from a wheelhouse into a new virtual environment, with no network at all.
#
#   packaging/install_offline.sh WHEELHOUSE [VENV]     (default VENV: ./radlens-venv)
set -euo pipefail
WH=$(cd "${1:?usage: install_offline.sh WHEELHOUSE [VENV]}" && pwd)
VENV=${2:-radlens-venv}
PY=${PYTHON:-python3}
"$PY" -m venv "$VENV"
# --no-index: pip may only look in the wheelhouse, so nothing can be fetched from anywhere.
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-index \
  --find-links "$WH" --upgrade pip
"$VENV/bin/python" -m pip install -q --disable-pip-version-check --no-index \
  --find-links "$WH" "radlens[test]"
echo "installed: $VENV/bin/radlens"
