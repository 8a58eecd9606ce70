#!/usr/bin/env bash
# Re-pin constraints.txt on purpose: install the newest versions pyproject.toml allows into a
# new venv, run the whole suite there, and only if it passes write that venv's `pip freeze`
# (less couponlab itself) to constraints.txt. See docs/howto/update-dependencies.md.
# Usage: bash tools/update-constraints.sh [VENV]   (VENV defaults to .venv-latest; reused
# only if you name it: the default is made anew so no stale package is pinned)
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${1:-.venv-latest}"
if [[ $# -eq 0 ]]; then
    rm -rf "$venv"
    python3 -m venv "$venv"
    "$venv/bin/python" -m pip install -q --upgrade --upgrade-strategy eager -e ".[dev]"
fi
"$venv/bin/python" -m pytest -q tests hil --lab src/couponlab/labs/sim_lab.yaml
{
    echo "# Versions a fresh install uses (pip install -c constraints.txt ...): a pip freeze of a"
    echo "# venv that passed the whole suite, less couponlab itself, made by"
    echo "# tools/update-constraints.sh with $("$venv/bin/python" --version) on $(date -u +%Y-%m-%d)."
    echo "# Update on purpose, never by hand: docs/howto/update-dependencies.md"
    "$venv/bin/python" -m pip freeze --exclude-editable --exclude couponlab
} > constraints.txt
echo "constraints.txt: $(grep -cv '^#' constraints.txt) pins"
