#!/usr/bin/env bash
# Set up mixerlab on a fresh Debian machine: the Fashion-MNIST data set and a virtualenv.
# Idempotent: a second run only checks. Used by `make setup` (and so by `make demo`/`make test`).
set -euo pipefail
cd "$(dirname "$0")/.."
VENV=${VENV:-.venv}
PYTHON=${PYTHON:-python3}

# The embedded default data set: real Fashion-MNIST from Debian (IDX files, about 30 MB).
if [ ! -f /usr/share/datasets/fashion-mnist/train-images-idx3-ubyte.gz ] && [ -z "${MIXERLAB_DATA:-}" ]; then
  if command -v apt-get >/dev/null && [ "$(id -u)" = 0 ]; then
    echo "setup: installing Debian's dataset-fashion-mnist"
    apt-get install -y -q dataset-fashion-mnist >/dev/null 2>&1 \
      || { apt-get update -q >/dev/null && apt-get install -y -q dataset-fashion-mnist >/dev/null; }
  else
    echo "setup: Fashion-MNIST not found; run 'sudo apt-get install dataset-fashion-mnist'," \
         "or set MIXERLAB_DATA to a folder with its IDX .gz files" >&2
  fi
fi

stamp="$VENV/.mixerlab-installed"
if [ ! -f "$stamp" ] || [ pyproject.toml -nt "$stamp" ] || [ requirements.lock -nt "$stamp" ]; then
  echo "setup: creating $VENV (torch, timm, ray[tune], ... pinned by requirements.lock; ~2-4 min)"
  # The venv takes about 7 GB (torch 2.14.1 is a CUDA build: see requirements.lock). Say so
  # up front rather than let pip fail half-way with "No space left on device".
  need_mb=${MIXERLAB_SETUP_NEED_MB:-7500}  # settable only so the test can ask for too much
  mkdir -p "$(dirname "$VENV")"
  read -r free_mb mount < <(df -Pm "$(dirname "$VENV")" | awk 'NR==2 {print $4, $6}')
  if [ ! -x "$VENV/bin/python" ] && [ -n "$free_mb" ] && [ "$free_mb" -lt "$need_mb" ]; then
    echo "setup: $VENV needs about $need_mb MB of disk, but only $free_mb MB are free on" \
         "$mount; free some space or put the venv elsewhere: make VENV=/path/with/room/venv ..." >&2
    exit 2
  fi
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  # trackers: tensorboard, mlflow-skinny, wandb for `mixerlab sweep --log` (and its tests)
  "$VENV/bin/pip" install -q -c requirements.lock -e '.[dev,trackers]'
  touch "$stamp"
fi
"$VENV/bin/python" -c "import mixerlab, torch, timm, ray; print(f'setup: mixerlab {mixerlab.__version__}, torch {torch.__version__}, timm {timm.__version__}, ray {ray.__version__}')"
