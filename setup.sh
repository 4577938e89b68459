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
# festival, espeak-ng and sox for the synthetic corpus (its tests skip, saying so, where they cannot be installed)
tools/install_speech_tools.sh || echo "setup.sh: could not install festival/sox; corpus tests will be skipped" >&2
echo "setup.sh: ready (.venv)" >&2
