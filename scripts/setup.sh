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
  [ -x "$VENV/bin/python" ] || "$PYTHON" -m venv "$VENV"
  "$VENV/bin/pip" install -q --upgrade pip >/dev/null
  # trackers: tensorboard, mlflow-skinny, wandb for `mixerlab sweep --log` (and its tests)
  "$VENV/bin/pip" install -q -c requirements.lock -e '.[dev,trackers]'
  touch "$stamp"
fi
"$VENV/bin/python" -c "import mixerlab, torch, timm, ray; print(f'setup: mixerlab {mixerlab.__version__}, torch {torch.__version__}, timm {timm.__version__}, ray {ray.__version__}')"
