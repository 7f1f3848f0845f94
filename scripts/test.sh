#!/usr/bin/env bash
# Run the test suite from the repo root; extra arguments go to pytest (e.g. -k, -m, -x).
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/.."
# shellcheck source=scripts/env.sh
source scripts/env.sh
exec python -m pytest -q "$@"
