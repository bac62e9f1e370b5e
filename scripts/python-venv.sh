#!/usr/bin/env bash
# A Python venv with test/clients/requirements.txt, for the Python client tests
# (test/clients). Prints its python's path on stdout, the rest on stderr:
#   export IDX_ETL_PYTHON=$(bash scripts/python-venv.sh)
# Kept in ~/.cache/idx-etl (or IDX_ETL_VENV_DIR), one per requirements file and
# Python version, and built under another name then renamed, so an interrupted
# build is never taken for a finished one (bin/python finds the venv wherever it
# lies; only pip's own scripts would name the old path, and we run `python -m pip`).
# pip installs from whatever index it is configured with; PIP_RETRIES defaults
# to 0 here, since an unreachable index is otherwise retried for minutes first.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if ! command -v "$python" >/dev/null; then
  echo "python-venv: no $python: the Python client tests (test/clients) need Python 3 with its venv module" >&2
  exit 1
fi
requirements=test/clients/requirements.txt
key=$({ cat "$requirements"; "$python" --version; } | sha256sum | cut -c1-16)
root=${IDX_ETL_VENV_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/idx-etl}
venv=$root/venv-$key
if [ ! -x "$venv/bin/python" ]; then
  mkdir -p "$root"
  building=$venv.building-$$
  trap 'rm -rf "$building"' EXIT
  echo "python-venv: installing $(grep -v '^#' "$requirements" | tr '\n' ' ')into $venv" >&2
  "$python" -m venv "$building"
  PIP_RETRIES=${PIP_RETRIES:-0} "$building/bin/python" -m pip install -qq --disable-pip-version-check \
    -r "$requirements" >&2
  mv "$building" "$venv"
  trap - EXIT
fi
echo "$venv/bin/python"
