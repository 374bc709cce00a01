from .tools.cli import main

raise SystemExit(main(prog="python -m lrfast"))
