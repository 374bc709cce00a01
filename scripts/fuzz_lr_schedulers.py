"""The long run of the drop-in differential test (tests/fuzz_lr_schedulers.py).

    python scripts/fuzz_lr_schedulers.py --examples 5000 [--seed 7] [--property soundness]

Draws random runs (every torch scheduler class, 1-5 groups, float / float64 / float32
tensor LRs, stacked pairs, hand edits, groups added, state-dict round trips and copies mid
run) and checks lrfast against torch after every step; prints the first failing run.
``--property soundness`` draws the runs of tests/test_soundness.py instead (lrfast.optim.SGD,
float64 parameters, resumes and attribute edits too) and checks, besides torch's LRs, that
the optimizer applies at every step exactly the LR its group shows.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "tests"))
from fuzz_lr_schedulers import check_random_run, check_sound_run, run_strategy, sound_run_strategy  # noqa: E402


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--examples", type=int, default=2000, help="random runs to check (default 2000)")
    parser.add_argument("--seed", type=int, default=0, help="hypothesis seed (default 0)")
    parser.add_argument("--property", choices=["torch", "soundness"], default="torch",
                        help="torch: lrfast's LRs are torch's (default); soundness: that, and the optimizer "
                             "applies the LR its group shows")
    args = parser.parse_args()
    strategy, check = ((sound_run_strategy(), check_sound_run) if args.property == "soundness"
                       else (run_strategy(), check_random_run))

    @seed(args.seed)
    @settings(max_examples=args.examples, deadline=None, suppress_health_check=list(HealthCheck))
    @given(strategy)
    def fuzz(run):
        check(run)

    fuzz()
    what = "and applied what its groups showed " if args.property == "soundness" else ""
    print(f"{args.examples} random runs: lrfast matched torch {what}at every step")
    return 0


if __name__ == "__main__":
    sys.exit(main())
