#!/usr/bin/env bash
# The mutation check of the emulated kernel tests (docs/emulator.md, "Mutations"): rebuilds
# lrfast._C_emu once per mutation in scripts/emu_mutations.py (one edit of csrc/ each, in a
# copy of the sources; an incremental build) and requires that tests/test_emu_kernels.py
# fails on every one. Run where `pip install -e ".[test]"` was done.
#   bash scripts/emu_mutations.sh [--list | NAME ...]
set -euo pipefail
cd "$(dirname "$0")/.."
exec python scripts/emu_mutations.py "$@"
