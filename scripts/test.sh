#!/usr/bin/env bash
# Set up (if needed) and run the test suite: bash scripts/test.sh [pytest options]
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh --dev
export HF_HUB_OFFLINE=1 GLOG_minloglevel=2 TF_CPP_MIN_LOG_LEVEL=2
exec .venv/bin/python -m pytest "$@"
