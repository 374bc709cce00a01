#!/usr/bin/env bash
# The test command the README gives (and .ci/run runs): the whole suite, slow- and
# gpu-marked tests included (GPU tests skip, saying why, where no GPU is usable), benchmarks
# run once as tests. Extra arguments go to pytest: -m "not slow" is the quick loop, -n 0 runs
# in this one process (a later -n wins).
# Two pytest-xdist workers, one test file at a time each (--dist loadfile): a file's tests run
# in one process, in their order, as they do without xdist; the workers are fresh interpreters
# (not forks). Numba's on-disk cache is shared by both: it writes each entry to a temporary
# file and renames it into place, and a missing entry is compiled again, never misread.
# Each worker runs torch and Numba on one thread, and the longest files go out first
# (tests/conftest.py: NOTE [one thread per worker], NOTE [heaviest first]).
# The 15 slowest tests are listed at the end, to keep the suite's time in view.
# pytest exits 5 when it collects no test; that is a failure here too.
set -euo pipefail
cd "$(dirname "$0")/.."
python -m pytest -q -p no:cacheprovider --benchmark-disable --durations=15 -n 2 --dist loadfile "$@"
