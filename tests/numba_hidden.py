"""The first lines of a child script that runs as if Numba were not installed.

An import hook refuses ``numba`` and ``llvmlite``; what the child imports after these
lines sees an ``ImportError``, as on a machine without them.
"""

import textwrap

HIDE_NUMBA = textwrap.dedent('''
    import importlib.abc, sys

    class HideNumba(importlib.abc.MetaPathFinder):
        def find_spec(self, name, path, target=None):
            if name.split(".")[0] in ("numba", "llvmlite"):
                raise ImportError(f"No module named {name!r} (hidden by the test)")
            return None

    sys.meta_path.insert(0, HideNumba())
''')
