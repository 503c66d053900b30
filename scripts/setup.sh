#!/usr/bin/env bash
# Set up Avatar Studio in ./.venv. Safe and fast to re-run: Debian packages are only
# installed when missing, pip only runs when a requirements file changed.
#   scripts/setup.sh          runtime (packages.txt, requirements.txt)
#   scripts/setup.sh --dev    plus test tools (packages-dev.txt, requirements-dev.txt)
set -euo pipefail
cd "$(dirname "$0")/.."
dev=0
[ "${1:-}" = "--dev" ] && dev=1

pkg_files=(packages.txt)
req_files=(requirements.txt)
if [ "$dev" = 1 ]; then pkg_files+=(packages-dev.txt); req_files+=(requirements-dev.txt); fi

missing=()
for p in $(grep -hv '^\s*#' "${pkg_files[@]}"); do
  dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q "install ok installed" || missing+=("$p")
done
if [ "${#missing[@]}" -gt 0 ]; then
  if [ "$(id -u)" = 0 ]; then sudo=""; elif command -v sudo >/dev/null; then sudo="sudo"; else sudo="none"; fi
  if [ "$sudo" = none ] || ! command -v apt-get >/dev/null; then
    echo "setup: please install these system packages: ${missing[*]}" >&2
  else
    echo "setup: installing system packages: ${missing[*]}" >&2
    $sudo apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
  fi
fi

py="${PYTHON:-}"
if [ -z "$py" ]; then
  for c in python3.11 python3; do command -v "$c" >/dev/null && { py="$c"; break; }; done
fi
if [ ! -x .venv/bin/python ]; then
  echo "setup: creating .venv with $py" >&2
  "$py" -m venv .venv
fi
want="$(cat "${req_files[@]}" | sha256sum | cut -d' ' -f1)"
stamp=".venv/.requirements-$dev.sha256"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  echo "setup: installing Python packages (first run takes a few minutes)" >&2
  .venv/bin/python -m pip install -q --upgrade pip >/dev/null
  args=(); for f in "${req_files[@]}"; do args+=(-r "$f"); done
  .venv/bin/python -m pip install -q "${args[@]}"
  .venv/bin/python -m pip check
  echo "$want" > "$stamp"
fi
