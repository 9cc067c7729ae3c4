#!/usr/bin/env bash
# Prove the offline install: build the wheelhouse, install it into a fresh venv with
# --no-index (inside a network namespace with no interfaces when `unshare` allows it),
# then run `radlens --help` and `radlens models` and check the installed resources.
#
#   packaging/check_offline_install.sh [WORKDIR]      (default: a new folder under /tmp)
set -euo pipefail
cd "$(dirname "$0")/.."
REPO=$(pwd)
WORK=${1:-$(mktemp -d /tmp/radlens-offline-XXXXXX)}
WH=${WHEELHOUSE:-$WORK/wheelhouse}
mkdir -p "$WORK"
echo "== building the wheelhouse in $WH"
if [ -z "${SKIP_BUILD:-}" ]; then
  packaging/build_wheelhouse.sh "$WH"
fi

OFFLINE=()
if unshare -rn true 2>/dev/null; then
  OFFLINE=(unshare -rn)  # a private network namespace: not even loopback is up
  echo "== installing with the network cut off (unshare -rn)"
else
  echo "== unshare is not permitted here; relying on pip --no-index alone"
fi
rm -rf "$WORK/venv"
"${OFFLINE[@]}" packaging/install_offline.sh "$WH" "$WORK/venv"

echo "== running the installed radlens (from outside the checkout)"
cd "$WORK"
export RADLENS_DATA_DIR="$WORK/data" QT_QPA_PLATFORM=offscreen
"${OFFLINE[@]}" "$WORK/venv/bin/radlens" --help
"${OFFLINE[@]}" "$WORK/venv/bin/radlens" models

echo "== checking that the wheel carries resources/models"
"$WORK/venv/bin/python" - "$REPO" <<'PY'
import sys
from pathlib import Path

import radlens_resources

from inference.paths import resources_dir

repo = Path(sys.argv[1]) / "resources" / "models"
installed = Path(radlens_resources.__file__).parent / "models"
assert resources_dir() == installed.parent, f"resources_dir() is {resources_dir()}"
want = sorted(str(p.relative_to(repo)) for p in repo.rglob("*") if p.is_file() and "__pycache__" not in p.parts)
have = {str(p.relative_to(installed)) for p in installed.rglob("*") if p.is_file()}
missing = [w for w in want if w not in have]
print(f"{len(want)} files under resources/models, {len(have)} installed")
if missing:
    sys.exit(f"missing from the installed wheel: {missing}")
PY
echo "OK: offline install works ($WORK)"
