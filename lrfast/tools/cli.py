"""``lrfast`` / ``python -m lrfast``: demo, info, bench, plot.

    python -m lrfast demo                      # the StepLR example, then step() costs vs torch
    python -m lrfast info                      # what was built and what is usable here
    python -m lrfast bench --quick --json b.json --plot b.png   # lrfast vs torch on this machine
    python -m lrfast plot "cosine_decay(1.0, 1000)" "warmup_constant(0.0, 1.0, 100)" -o lr.png
"""

from __future__ import annotations

import argparse
import ast
import json
import os
import sys
import textwrap
from collections.abc import Sequence
from typing import TYPE_CHECKING, Any, NoReturn, get_type_hints

if TYPE_CHECKING:
    from lrfast.schedules import Schedule

__all__ = ["main", "build_parser", "factory_names", "parse_schedule", "UsageError"]


# -- plot ------------------------------------------------------------------------------

def parse_schedule(spec: str) -> Schedule:
    """The Schedule of a factory-call expression such as ``"cosine_decay(1.0, 1000)"`` or
    ``"join([constant(1.0), linear(1.0, 0.0, 10)], [5])"``: only lrfast.schedules
    factories and literal arguments are allowed (nothing is evaluated otherwise).

    >>> from lrfast.tools.cli import parse_schedule
    >>> parse_schedule("join([constant(1.0), linear(1.0, 0.0, 10)], [5])")(10)
    0.5
    """
    from lrfast import schedules

    factories = set(factory_names())
    try:
        tree = ast.parse(spec, mode="eval")
    except SyntaxError as exc:
        raise ValueError(f"plot: cannot parse schedule spec {spec!r}: {exc.msg}") from None

    def build(node: ast.expr) -> Any:
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name) or node.func.id not in factories:
                raise ValueError(f"plot: {ast.unparse(node.func)!r} is not an lrfast.schedules factory")
            if any(k.arg is None for k in node.keywords) or any(isinstance(a, ast.Starred) for a in node.args):
                raise ValueError(f"plot: write the arguments out (no * or **), got {ast.unparse(node)!r}")
            args = [build(a) for a in node.args]
            kwargs = {str(k.arg): build(k.value) for k in node.keywords}
            return getattr(schedules, node.func.id)(*args, **kwargs)
        if isinstance(node, (ast.List, ast.Tuple)):
            return [build(e) for e in node.elts]
        if isinstance(node, ast.Dict):
            if any(k is None for k in node.keys):
                raise ValueError(f"plot: write the dict out (no **), got {ast.unparse(node)!r}")
            return {build(k): build(v) for k, v in zip(node.keys, node.values) if k is not None}
        try:
            return ast.literal_eval(node)
        except ValueError:
            raise ValueError(f"plot: only literals and schedule factories are allowed, got "
                             f"{ast.unparse(node)!r}") from None

    schedule = build(tree.body)
    if not isinstance(schedule, schedules.Schedule):
        raise ValueError(f"plot: {spec!r} is not a schedule (a factory call such as \"constant(1.0)\")")
    return schedule


# -- entry point -----------------------------------------------------------------------

class UsageError(Exception):
    """A mistake in the command line or its files: reported as one line, no traceback."""


class _Parser(argparse.ArgumentParser):
    # argparse prints the whole usage before its error; one line keeps a user error readable
    # (and greppable in CI logs); --help still shows the usage.
    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _non_negative_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"expected an int >= 0, got {text!r}")
    return value


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"expected a positive int, got {text!r}")
    return value


def factory_names() -> list[str]:
    """The public ``lrfast.schedules`` functions that return a Schedule (what ``plot`` accepts)."""
    from lrfast import schedules

    return [n for n in schedules.__all__ if n[0].islower() and callable(getattr(schedules, n))
            and get_type_hints(getattr(schedules, n)).get("return") is schedules.Schedule]


def _check_output(option: str, path: str | None) -> None:
    """Fail before the work (a bench run takes minutes) when an output cannot be written."""
    if path is None:
        return
    folder = os.path.dirname(os.path.abspath(path))
    if not os.path.isdir(folder):
        raise UsageError(f"{option}: folder {folder!r} does not exist (for {path!r})")
    if os.path.isdir(path):
        raise UsageError(f"{option}: {path!r} is a folder, expected a file path")


def _check_bench(args: argparse.Namespace) -> None:
    for option in ("json", "markdown", "plot"):
        _check_output(f"--{option}", getattr(args, option))
    if args.targets and (args.plot is not None or args.device != "cpu" or args.quick or args.from_json):
        raise UsageError("--targets: measures the three CPU targets only; it takes no --plot, --device cuda, "
                         "--quick or --from-json")
    if args.only == "patterns" and (args.targets or args.plot is not None or args.device != "cpu"
                                    or args.cache_mib is not None or args.from_json):
        raise UsageError("--only patterns: measures the pattern table only (scheduler calls on the CPU, no cache "
                         "eviction); it takes no --targets, --plot, --device cuda, --cache-mib or --from-json")
    if args.plot is not None:
        _require_matplotlib("bench --plot")
        _check_image_suffix("--plot", args.plot)
    if args.from_json is not None:
        try:
            with open(args.from_json) as f:
                data = json.load(f)
        except FileNotFoundError:
            raise UsageError(f"--from-json: no such file {args.from_json!r}") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise UsageError(f"--from-json: cannot read {args.from_json!r} as JSON ({exc})") from None
        if not (isinstance(data, dict) and isinstance(data.get("meta"), dict) and isinstance(data.get("rows"), list)):
            raise UsageError(f"--from-json: {args.from_json!r} is not a saved `bench --json` run "
                             "(expected an object with 'meta' and 'rows')")
        from .bench.cases import BYTES_PER_ELEMENT  # the size curves' sections

        if args.plot is not None and not any(isinstance(r, dict) and r.get("section") in BYTES_PER_ELEMENT
                                             for r in data["rows"]):
            raise UsageError(f"--plot: {args.from_json!r} holds no size curves (a --targets run): nothing to draw")
    elif args.device == "cuda":
        import torch

        from lrfast import cuda_status

        usable, why = cuda_status()
        if not torch.cuda.is_available():
            raise UsageError("--device cuda: torch sees no GPU here (a CUDA build of torch and a GPU are needed)")
        if not usable:
            raise UsageError(f"--device cuda: lrfast's CUDA kernels cannot run here: {why}")


def _check_image_suffix(option: str, path: str) -> None:
    """Fail before the work when matplotlib cannot write ``path``'s format (its suffix)."""
    import matplotlib.figure

    suffix = os.path.splitext(path)[1].lower().lstrip(".")
    formats = matplotlib.figure.Figure().canvas.get_supported_filetypes()
    if suffix not in formats:
        raise UsageError(f"{option}: {path!r} has no image suffix matplotlib writes "
                         f"(one of {', '.join(sorted(formats))})")


def _require_matplotlib(what: str) -> None:
    try:
        import matplotlib  # noqa: F401
    except ImportError:
        raise UsageError(f"{what} needs matplotlib: pip install \"lrfast[plot]\"") from None


def build_parser(prog: str = "lrfast") -> argparse.ArgumentParser:
    """The command line of ``lrfast`` / ``python -m lrfast``."""
    from lrfast import __version__

    parser = _Parser(prog=prog, description="lrfast: learning-rate schedules that cost nothing")
    parser.add_argument("--version", action="version", version=f"%(prog)s {__version__}",
                        help="print the version and exit")
    sub = parser.add_subparsers(dest="command", required=True, metavar="{demo,info,bench,plot}")
    p_demo = sub.add_parser("demo", help="run the StepLR example, then compare scheduler.step() costs with torch",
                            description="The README's StepLR example (30 epochs), then scheduler.step() host cost "
                                        "of torch and lrfast side by side.")
    p_demo.add_argument("--groups", type=_positive_int, nargs="+", default=[1, 10, 100],
                        help="param-group counts to time (default: 1 10 100)")
    sub.add_parser("info", help="print what was built and what is usable here",
                   description="What was built (host module, CUDA kernels) and what is usable here, and why not.")
    p_bench = sub.add_parser("bench", help="compare lrfast with torch on this machine (side by side, one run)",
                             description="lrfast vs torch on this machine, side by side in one run: "
                                         "scheduler.step() cost (also by pattern of use), optimizer + scheduler steps, "
                                         "memory bandwidth.")
    p_bench.add_argument("--quick", action="store_true",
                         help="small sizes (3 per curve, one 2,000-tensor set), 7 rounds (default: off, the full run)")
    p_bench.add_argument("--device", choices=["cpu", "cuda"], default="cpu",
                         help="where the optimizers run; cuda needs a GPU and lrfast's CUDA kernels (default: cpu)")
    p_bench.add_argument("--json", default=None, metavar="PATH",
                         help="write results, machine, versions and command as JSON (default: not written)")
    p_bench.add_argument("--markdown", default=None, metavar="PATH",
                         help="write the tables as markdown (default: not written)")
    p_bench.add_argument("--plot", default=None, metavar="PATH",
                         help="write time per step vs size as a PNG; needs matplotlib (default: not drawn)")
    p_bench.add_argument("--cache-mib", type=_non_negative_int, default=None, metavar="MIB",
                         help="MiB read before every timed call to evict the caches, 0 for none (default: twice "
                              "the last-level cache)")
    p_bench.add_argument("--rounds", type=_positive_int, default=None, metavar="N",
                         help="paired rounds per row; each contender timed once a round (default: 15, 7 with "
                              "--quick, 21 with --targets, 31 with --only patterns)")
    p_bench.add_argument("--targets", action="store_true",
                         help="only the three CPU targets (docs/benchmarks.md), lrfast vs torch fused, with the "
                              "bandwidth reached (default: off, the whole report)")
    p_bench.add_argument("--only", choices=["patterns"], default=None,
                         help="measure one section only: patterns = scheduler.step() by pattern (one scheduler of "
                              "every class, composites, two stacked, a resume, a hand edit), torch vs lrfast at 1, "
                              "10 and 100 groups, on torch.optim.SGD and lrfast.optim.SGD; 31 rounds of 100 steps, "
                              "--quick 7 (default: the whole report)")
    p_bench.add_argument("--no-progress", action="store_true", help="no progress bar (default: shown on a tty)")
    p_bench.add_argument("--from-json", default=None, metavar="PATH",
                         help="regenerate the tables (and --plot) from a saved --json run instead of measuring "
                              "(default: measure)")
    names = factory_names()
    p_plot = sub.add_parser(
        "plot", help="draw schedules to a PNG", formatter_class=argparse.RawDescriptionHelpFormatter,
        description="Draw lrfast.schedules curves to an image (needs matplotlib: pip install \"lrfast[plot]\").",
        epilog="factories (lrfast.schedules):\n" + textwrap.fill(", ".join(names), 88, initial_indent="  ",
                                                                  subsequent_indent="  ")
        + '\n\nexample:\n  %(prog)s "warmup_cosine_decay(0.0, 1.0, 100, 1000)" "one_cycle(1.0, 1000)" -o lr.png')
    p_plot.add_argument("specs", nargs="+", metavar="SPEC",
                        help='a schedule factory call with literal arguments, e.g. "cosine_decay(1.0, 1000)"')
    p_plot.add_argument("-o", "--output", required=True, metavar="PATH",
                        help="the image to write; the format follows the suffix, e.g. .png (required)")
    p_plot.add_argument("--steps", type=_positive_int, default=1000, help="steps to draw (default: 1000)")
    p_plot.add_argument("--log", action="store_true", help="logarithmic LR axis (default: linear)")
    return parser


def _bench(args: argparse.Namespace, command_line: str) -> int:
    """Measure (or load a saved run), then print and write the report; ``command_line`` is kept in the JSON."""
    from . import bench

    if args.from_json:
        meta, rows = bench.load_json(args.from_json)
    elif args.only == "patterns":
        meta, rows = bench.run_patterns(args.quick, show_progress=not args.no_progress, rounds=args.rounds,
                                        command=command_line)
    elif args.targets:
        meta, rows = bench.run_targets(args.cache_mib, show_progress=not args.no_progress, rounds=args.rounds,
                                       command=command_line)
    else:
        meta, rows = bench.run_bench(args.device, args.quick, cache_mib=args.cache_mib,
                                     show_progress=not args.no_progress, rounds=args.rounds,
                                     command=command_line)
    table = bench.markdown(meta, rows)
    print(table)
    if args.json and not args.from_json:
        bench.save_json(args.json, meta, rows)
    if args.markdown:
        with open(args.markdown, "w") as f:
            f.write(table + "\n")
    if args.plot:
        bench.plot(rows, meta, args.plot)
    return 0


def main(argv: Sequence[str] | None = None, prog: str = "lrfast") -> int:
    """Run the command line; returns the exit status (0 ok, 1 a failed write, 2 a usage error).

    >>> from lrfast.tools.cli import main
    >>> main(["info"]) == 0  # doctest: +ELLIPSIS
    lrfast ...
    True
    """
    argv = sys.argv[1:] if argv is None else list(argv)
    args = build_parser(prog).parse_args(argv)
    try:
        return _run(args, " ".join([prog, *argv]))
    except UsageError as exc:
        print(f"{prog} {args.command}: error: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:  # a write that failed after the checks (disk full, permissions)
        print(f"{prog} {args.command}: error: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        print(f"{prog} {args.command}: interrupted", file=sys.stderr)
        return 130


def _run(args: argparse.Namespace, command_line: str) -> int:
    if args.command == "demo":
        from .demo import demo_costs, demo_training

        demo_training()
        demo_costs(args.groups)
        return 0
    if args.command == "bench":
        _check_bench(args)
        return _bench(args, command_line)
    if args.command == "info":
        from lrfast import info

        info()
        return 0
    if args.command == "plot":
        _check_output("-o/--output", args.output)
        _require_matplotlib("plot")
        _check_image_suffix("-o/--output", args.output)
        try:
            schedules = [parse_schedule(s) for s in args.specs]
        except (ValueError, TypeError) as exc:  # the factories' argument errors name the factory
            raise UsageError(str(exc).removeprefix("plot: ")) from None
        from lrfast.plotting import plot

        plot(schedules, args.steps, args.output, labels=args.specs, log_y=args.log)
        print(f"wrote {args.output}")
        return 0
    raise AssertionError(args.command)  # argparse rejects unknown commands
