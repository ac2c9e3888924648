#!/usr/bin/env bash
# The GPU check (issue 37): the first run of mixerlab on a GPU, prepared before a GPU is lent.
#
#   bash benchmarks/gpu_check.sh OUT             # on a GPU machine; OUT may also come from $OUT
#   bash benchmarks/gpu_check.sh --cpu-dry OUT   # anywhere: every file, GPU columns "not measured"
#   bash benchmarks/gpu_check.sh OUT -- --items quick   # after --: options of gpu_check.py
#
# Writes eight files into OUT (no folders: what the device tool brings back): env.txt,
# correctness.csv, throughput.csv, packing.csv, quick.csv, quick-trials.csv, summary.md,
# log.txt. What each holds: benchmarks/gpu_check.py and gpu_items.py. Aims to end within 450
# s (7.5 min) on one H100 (--budget-s). Without CUDA and without --cpu-dry it stops at one line,
# exit 2, as it does when a package is missing.
#
# What it relies on from the device machine (/work/.library/device/KINDS.md, image 'cuda'):
# python3 3.12 with torch (CUDA), torchvision, triton, numpy, pandas, pyarrow, scipy,
# statsmodels, matplotlib, seaborn, PyYAML, tqdm, timm, pip; nvidia-smi. What it lacks and
# must be carried (no package index there; the working tree and the carried paths travel
# together, 64 MiB at most, and the project's 7 GB venv cannot):
#   pydantic, pydantic_core, annotated-types, typing-inspection   mixerlab's config (wheels)
#   ray (trimmed: 19 MiB of xz for its 79 MB wheel), jsonschema,   `mixerlab sweep`
#     jsonschema-specifications, referencing, rpds-py, tensorboardX
#   Fashion-MNIST (9.4 MiB of xz: the images the check reads)      every item's data
# All of it is built here, once, into .carry/ (ignored by git via .git/info/exclude):
#
#   bash benchmarks/gpu_carry.sh           # pip download (cp312 wheels) + gpu_carry.py; prints the sizes
#
# then the device tool's run, with carry=[".carry"] and timeout_s about 540 (the 450 s budget,
# the unpacking and start-up), which leaves room in the 15 minutes for a rerun of one item:
#
#   PYTHONUNBUFFERED=1 bash benchmarks/gpu_check.sh "$OUT"
#
# This script installs the carried wheels with pip --no-index --target into a temporary folder,
# unpacks Ray and the data there, and puts src/ and that folder on PYTHONPATH (Ray's trial
# workers inherit it). mixerlab itself runs from src/, not installed. Where the Python it
# finds has pydantic and Ray (here, the project's venv), or without .carry/, it uses only
# what that Python has.
set -uo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)

DRY=()
OUT_DIR=${OUT:-}
EXTRA=()
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu-dry) DRY=(--cpu-dry) ;;
    -h|--help) sed -n '2,/^set /p' "${BASH_SOURCE[0]}" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
    --) shift; EXTRA=("$@"); break ;;
    -*) echo "gpu_check: unknown option $1 (options of gpu_check.py go after --)" >&2; exit 2 ;;
    *) OUT_DIR=$1 ;;
  esac
  shift
done
[ -n "$OUT_DIR" ] || { echo "gpu_check: no output folder: gpu_check.sh [--cpu-dry] OUT, or set \$OUT" >&2; exit 2; }

# The Python: $PYTHON, else the project's venv where there is one, else python3 (the device's).
PY=${PYTHON:-}
if [ -z "$PY" ]; then
  if [ -x "$ROOT/.venv/bin/python" ]; then PY=$ROOT/.venv/bin/python; else PY=python3; fi
fi
command -v "$PY" >/dev/null || { echo "gpu_check: no Python: $PY not found (set \$PYTHON)" >&2; exit 2; }

# What was carried, where this Python lacks pydantic or Ray (the device machine; not the
# project's venv): wheels installed, Ray and the data unpacked, under one temporary folder.
CARRY=${GPU_CHECK_CARRY:-$ROOT/.carry}
SITE=""
has_all() { "$PY" -c 'import importlib.util as u, sys; sys.exit(0 if all(u.find_spec(m) for m in ("pydantic", "ray")) else 1)' 2>/dev/null; }
if [ -d "$CARRY" ] && ! has_all; then
  BASE=${TMPDIR:-/tmp}/gpu_check-carried
  SITE=$BASE/site
  rm -rf "$BASE" && mkdir -p "$SITE" "$BASE/data"
  if compgen -G "$CARRY/wheels/*.whl" >/dev/null; then
    if ! "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
        --target "$SITE" "$CARRY"/wheels/*.whl >"$BASE/pip.log" 2>&1; then
      echo "gpu_check: installing the carried wheels failed: $(grep -m1 -i error "$BASE/pip.log" || tail -1 "$BASE/pip.log") (they are cp312 wheels: is $PY Python 3.12?)" >&2
      exit 2
    fi
  fi
  unpack() {  # tar.xz with Python's tarfile: no xz binary needed
    "$PY" -c 'import sys, tarfile; t = tarfile.open(sys.argv[1]); kw = {"filter": "data"} if hasattr(tarfile, "data_filter") else {}; t.extractall(sys.argv[2], **kw)' "$1" "$2" \
      || { echo "gpu_check: could not unpack $1" >&2; exit 2; }
  }
  [ -f "$CARRY/ray.tar.xz" ] && unpack "$CARRY/ray.tar.xz" "$SITE"
  if [ -f "$CARRY/fashion-mnist.tar.xz" ]; then
    unpack "$CARRY/fashion-mnist.tar.xz" "$BASE/data"
    export MIXERLAB_DATA=$BASE/data GPU_CHECK_MASKED_DATA=1
  fi
fi
export PYTHONPATH="$ROOT/src${SITE:+:$SITE}${PYTHONPATH:+:$PYTHONPATH}"
export MIXERLAB_OFFLINE=1  # no network on the device machine: never try a download

exec "$PY" "$ROOT/benchmarks/gpu_check.py" --out "$OUT_DIR" ${DRY[@]+"${DRY[@]}"} ${EXTRA[@]+"${EXTRA[@]}"}
