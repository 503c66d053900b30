#!/usr/bin/env bash
# Set up (if needed) and launch the studio: bash scripts/studio.sh [launch.py options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
exec .venv/bin/python launch.py "$@"
