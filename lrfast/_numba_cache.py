"""Numba's on-disk cache, kept in step with the constants compiled into it.

Numba keys a cached function on its source file alone, yet freezes the module-level
constants it reads (layout slots, kind codes) into the machine code. When those come from
elsewhere -- lrfast._C.layout() through lrfast._descriptor, or lrfast/_bucket_layout.py -- a
rebuilt core or an edited layout would leave stale code in the cache. Each module that
compiles such constants in keeps a stamp of them beside its cache and flushes the cache
when the stamp differs.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

__all__ = ["digest", "compiled_functions", "drop_stale_cache"]


def digest(constants: Mapping[str, Any]) -> str:
    """A stamp of named constants: the same names and values give the same string."""
    return hashlib.sha1(repr(sorted(constants.items())).encode()).hexdigest()


def compiled_functions(namespace: Mapping[str, Any]) -> list[Any]:
    """Every Numba function of a module (its ``globals()``), each once: the list to flush,
    derived so that a function added later cannot be left out."""
    from numba.core.dispatcher import Dispatcher

    return list({id(value): value for value in namespace.values() if isinstance(value, Dispatcher)}.values())


def drop_stale_cache(dispatchers: Iterable[Any], name: str, digest: str) -> None:
    """Flush the cached code of ``dispatchers`` unless ``<name>.dependencies`` in their cache
    directory holds ``digest`` (a digest of the constants they compile in); then write it."""
    dispatchers = list(dispatchers)
    try:
        cache_dir = Path(dispatchers[0]._cache._cache_path)
    except (AttributeError, IndexError):  # pragma: no cover - a Numba without this attribute
        return
    stamp = cache_dir / f"{name}.dependencies"
    try:
        if stamp.exists() and stamp.read_text() == digest:
            return
        for dispatcher in dispatchers:
            dispatcher._cache.flush()
        cache_dir.mkdir(parents=True, exist_ok=True)
        stamp.write_text(digest)
    except OSError:  # a read-only install: Numba then caches elsewhere or not at all
        pass
