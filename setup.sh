#!/usr/bin/env bash
# Set up Talking Head's Python environment in .venv (Python 3.11, because bpy 5.0.1 needs it).
# Safe to run again: it only installs what is missing.
set -euo pipefail
cd "$(dirname "$0")"

python=""
for candidate in "${PYTHON:-}" python3.11 python3; do
  if [ -n "$candidate" ] && command -v "$candidate" >/dev/null 2>&1 \
     && "$candidate" -c 'import sys; sys.exit(sys.version_info[:2] != (3, 11))'; then
    python="$candidate"; break
  fi
done
if [ -z "$python" ]; then
  echo "setup.sh: Python 3.11 is needed (bpy 5.0.1 is built for it); install it or set PYTHON=/path/to/python3.11" >&2
  exit 1
fi

[ -x .venv/bin/python ] || "$python" -m venv .venv
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -r requirements.txt
# No system packages and no root here: the synthetic-corpus tools need festival, espeak-ng and sox,
# which tools/install_speech_tools.sh installs (the corpus command says so when they are missing).
echo "setup.sh: ready (.venv)" >&2
