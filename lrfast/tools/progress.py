"""A dependency-free progress bar for long runs (benchmarks), written to stderr.

>>> import io
>>> out = io.StringIO()
>>> with Progress(3, "bench", file=out, force=True, min_interval=0) as bar:
...     for name in ["a", "b", "c"]:
...         bar.update(note=name)
>>> out.getvalue().splitlines()[-1].split("]")[0]
'bench [##############################'

It draws only on a terminal: when ``file`` is not a TTY (CI logs, pipes, pytest's capture)
it writes nothing, unless ``force=True``. Redraws are throttled to ``min_interval`` seconds.
"""

from __future__ import annotations

import math
import sys
import time
from collections.abc import Iterable, Iterator
from typing import TextIO, TypeVar

__all__ = ["Progress", "track"]

T = TypeVar("T")


def _seconds(s: float) -> str:
    return f"{s:.1f}s" if s < 60 else f"{int(s // 60)}m{int(s % 60):02d}s"


class Progress:
    """``with Progress(total, "desc") as bar: ... bar.update()``: a bar of ``done/total``,
    percent, elapsed time and an estimate of the time left (a count when ``total`` is None).

    ``force`` draws even when ``file`` (default ``sys.stderr``) is not a TTY; ``disable``
    never draws. The final state stays on its line when the context exits.
    """

    def __init__(self, total: int | None = None, desc: str = "", *, file: TextIO | None = None,
                 force: bool = False, disable: bool = False, width: int = 30, min_interval: float = 0.1) -> None:
        if total is not None and (isinstance(total, bool) or not isinstance(total, int) or total < 0):
            raise ValueError(f"Progress: total must be an int >= 0 or None, got {total!r}")
        if not isinstance(width, int) or width < 1:
            raise ValueError(f"Progress: width must be a positive int, got {width!r}")
        self.total = total
        self.desc = desc
        self.file = file if file is not None else sys.stderr
        isatty = getattr(self.file, "isatty", None)
        self.enabled = not disable and (force or bool(isatty and isatty()))
        self.width = width
        self.min_interval = min_interval
        self.done = 0
        self.note = ""
        self._start = time.monotonic()
        self._last_draw = -float("inf")
        self._last_len = 0

    def __enter__(self) -> Progress:
        self._start = time.monotonic()
        self._draw(force=True)
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def update(self, n: int = 1, note: str | None = None) -> None:
        """Count ``n`` more done; ``note`` (the case just finished, say) shows after the bar."""
        self.done += n
        if note is not None:
            self.note = note
        self._draw()

    def close(self) -> None:
        if self.enabled and self._last_len:
            self._draw(force=True)
            self.file.write("\n")
            self.file.flush()
            self._last_len = 0

    def line(self) -> str:
        """The text of the bar as it stands now."""
        elapsed = time.monotonic() - self._start
        head = f"{self.desc} " if self.desc else ""
        if self.total:
            fraction = min(1.0, self.done / self.total)
            filled = int(round(fraction * self.width))
            bar = "#" * filled + "." * (self.width - filled)
            left = elapsed / fraction - elapsed if fraction > 0 else float("nan")
            eta = f" eta {_seconds(left)}" if fraction < 1 and not math.isnan(left) else ""
            text = f"{head}[{bar}] {self.done}/{self.total} {fraction:4.0%} {_seconds(elapsed)}{eta}"
        else:
            text = f"{head}{self.done} done {_seconds(elapsed)}"
        return f"{text} {self.note}" if self.note else text

    def _draw(self, force: bool = False) -> None:
        if not self.enabled:
            return
        now = time.monotonic()
        if not force and now - self._last_draw < self.min_interval and self.done != self.total:
            return
        self._last_draw = now
        text = self.line()
        pad = " " * max(0, self._last_len - len(text))  # wipe the tail of a longer previous line
        self.file.write(f"\r{text}{pad}")
        self.file.flush()
        self._last_len = len(text)


def track(items: Iterable[T], desc: str = "", total: int | None = None, **kwargs) -> Iterator[T]:
    """Yield from ``items`` with a :class:`Progress` bar (``total`` defaults to ``len(items)``)."""
    if total is None and hasattr(items, "__len__"):
        total = len(items)  # type: ignore[arg-type]
    with Progress(total, desc, **kwargs) as bar:
        for item in items:
            yield item
            bar.update()
