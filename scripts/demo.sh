#!/usr/bin/env bash
# The main job: every token mixer at Fashion-MNIST scale (28 px, 1 channel, 10 classes).
set -euo pipefail
for mixer in $(mixerlab models --json | python -c "import json,sys; print(' '.join(m['mixer'] for m in json.load(sys.stdin)['mixers']))"); do
  echo "== $mixer"
  mixerlab describe --mixer "$mixer" --patch-size 4
done
