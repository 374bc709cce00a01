#!/usr/bin/env bash
# The test command the README gives: the whole suite, benchmarks run once as tests.
# pytest exits 5 when it collects no test; that is a failure here too.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pytest -q -p no:cacheprovider --benchmark-disable "$@"
