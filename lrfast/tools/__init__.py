"""The tools around the library: the command line (``lrfast`` / ``python -m lrfast``), its
demo, the benchmark report, the progress bar they draw.

Nothing in the library imports this package (tests/test_package.py checks it): tools sit
on top of the public API -- ``lrfast.schedules``, ``lrfast.lr_scheduler``, ``lrfast.optim``,
``lrfast.info()`` and the status functions -- and import each other one way only:
``cli`` -> ``demo``, ``cli`` -> ``bench`` -> ``progress``.
"""

__all__: list[str] = []
