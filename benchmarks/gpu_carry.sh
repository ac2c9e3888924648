#!/usr/bin/env bash
# Build .carry/: what benchmarks/gpu_check.sh needs on a lent GPU machine and it lacks.
#
#   bash benchmarks/gpu_carry.sh [CARRY_DIR]   # default .carry/ in the repository root
#
# The device machine (Python 3.12, x86-64, no package index) has PyTorch and most of mixerlab's
# dependencies, but not pydantic, Ray or Fashion-MNIST (/work/.library/device/KINDS.md). This
# downloads cp312 manylinux wheels of the versions this venv runs (pip download --no-deps,
# as /work/.library/device/README.md describes), packs Ray trimmed and the data masked
# (benchmarks/gpu_carry.py says what is left out and why), adds /.carry/ to
# .git/info/exclude so it is never committed, and checks that the working tree and .carry/
# together fit the 64 MiB a device call carries. Ray's wheel (79 MB) is cached in
# $GPU_CARRY_CACHE (default /tmp/mixerlab-carry), outside the tree.
set -euo pipefail
ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
CARRY=${1:-$ROOT/.carry}
CACHE=${GPU_CARRY_CACHE:-/tmp/mixerlab-carry}
PY=${PYTHON:-$ROOT/.venv/bin/python}
LIMIT_MIB=64

exclude=$ROOT/.git/info/exclude
if [ -d "$ROOT/.git" ] && ! grep -qx '/.carry/' "$exclude" 2>/dev/null; then
  mkdir -p "$(dirname "$exclude")" && echo '/.carry/' >>"$exclude"
fi

version() { "$PY" -c "from importlib.metadata import version; print(version('$1'))" 2>/dev/null || true; }
pinned() { local v; v=$(version "$1"); if [ -n "$v" ]; then echo "$1==$v"; else echo "$1"; fi; }
PLATFORM=(--only-binary=:all: --python-version 3.12 --implementation cp
          --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64)
# Ray's and pydantic's own needs that the device machine lacks (the rest it has: click,
# filelock, msgpack, packaging, protobuf, PyYAML, requests, pandas, pyarrow, fsspec, aiohttp).
SMALL=(pydantic pydantic_core annotated-types typing-inspection jsonschema
       jsonschema-specifications referencing rpds-py tensorboardX)
specs=()
for name in "${SMALL[@]}"; do specs+=("$(pinned "$name")"); done

mkdir -p "$CARRY/wheels" "$CACHE"
rm -f "$CARRY"/wheels/*.whl
"$PY" -m pip download -q --no-deps "${PLATFORM[@]}" -d "$CARRY/wheels" "${specs[@]}"
ray=$(pinned ray)
"$PY" -m pip download -q --no-deps "${PLATFORM[@]}" -d "$CACHE" "$ray"
wheel=$(ls "$CACHE"/ray-"${ray#ray==}"-cp312-*.whl 2>/dev/null | head -1)
[ -n "$wheel" ] || { echo "gpu_carry: no cp312 wheel of $ray in $CACHE" >&2; exit 1; }
"$PY" "$ROOT/benchmarks/gpu_carry.py" ray "$wheel" "$CARRY/ray.tar.xz"
PYTHONPATH="$ROOT/src${PYTHONPATH:+:$PYTHONPATH}" "$PY" "$ROOT/benchmarks/gpu_carry.py" data "$CARRY/fashion-mnist.tar.xz"

# What a device call sends: tracked files, untracked files git does not ignore, and .carry/.
cd "$ROOT"
tree=$( { git ls-files -z; git ls-files -z --others --exclude-standard; } | du -cb --files0-from=- | tail -1 | cut -f1)
carried=$(du -sb "$CARRY" | cut -f1)
total=$((tree + carried))
mib() { awk -v b="$1" 'BEGIN { printf "%.1f", b / 1048576 }'; }
echo "working tree $(mib "$tree") MiB + $CARRY $(mib "$carried") MiB = $(mib "$total") MiB (limit $LIMIT_MIB MiB)"
if [ "$total" -gt $((LIMIT_MIB * 1048576)) ]; then
  echo "gpu_carry: over the $LIMIT_MIB MiB a device call carries" >&2
  exit 1
fi
