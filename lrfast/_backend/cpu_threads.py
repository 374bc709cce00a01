"""Which Numba threading layer lrfast's parallel kernels run on, and how they stay safe.

NOTE [threading layer] Numba runs ``prange`` loops on one process-wide *threading
layer*, picked at the first parallel call: by default TBB if it loads, else OpenMP,
else Numba's own ``workqueue``. Users do not pick layers, so lrfast picks for them:

- **OpenMP first, then TBB, then workqueue** (``configure``), unless the user chose:
  a ``NUMBA_THREADING_LAYER`` or ``NUMBA_THREADING_LAYER_PRIORITY`` in the environment,
  a ``numba.config.THREADING_LAYER`` set in code, or a layer already launched by other
  Numba code is left alone. Measured on the quiet 2-core machine (issue 14;
  docs/benchmarks.md, "Threading layer"), lrfast against torch's fused step: OpenMP
  1.17x / 1.03x / 2.82x on the issue's three sets, TBB 0.87x / 0.82x / 2.71x, workqueue
  0.84x / 0.71x / 1.60x (it pays about 0.4 ms per parallel call here).
- **When other processes want the cores**, an OpenMP parallel region waits a scheduler
  quantum for descheduled team members: AdamW on 262,144 elements took 7.8 ms a step
  on the busy machine against 0.28 ms under workqueue. The CPU backend therefore times
  both kernels of a big bucket and runs whichever is faster now (NOTE [parallel or
  serial] in ``lrfast/_backend/cpu.py``), so a busy machine gets the serial kernel.
- TBB (the issue's system TBB) grew an AdamW step on 100 elements from 123 to 680 us and
  RSS by 27 MB over 20k steps; pip's ``tbb`` did not. Numba's pip wheel does not bring
  TBB, so the choice in practice is OpenMP.
- **workqueue is serialised**: it aborts the process ("Concurrent access has been
  detected") when two threads enter parallel code at once, so where it is the layer,
  lrfast's parallel kernel calls take one process-wide lock (``run_parallel``). Numba
  code of the user's own, run in parallel from another thread at the same moment, is
  not covered by that lock.
- **Small buckets run serial kernels** (``lrfast._backend.cpu``, ``_config.PARALLEL_MIN_CHUNKS``):
  waking a thread team costs more than updating a few thousand elements, and a serial
  kernel never touches the threading layer, whatever it is.
- **The process keeps its thread counts** (NOTE [torch's thread count]).
- **A forked child of a process that launched GNU OpenMP** must not
  enter OpenMP again (libgomp is not fork-safe: Numba terminates such a child).
  ``parallel_allowed()`` is then False and the CPU backend runs the serial kernels in
  that child.

NOTE [torch's thread count] Numba's OpenMP layer starts by calling
``omp_set_num_threads(NUMBA_NUM_THREADS)`` on the thread that launches it, and that
symbol binds to the libgomp torch loaded first (torch loads it globally). Launched after
torch ran (``torch.set_num_threads(1)``, then any op), it set torch's own count on that
thread back to every core: torch's elementwise ops then ran on two threads. lrfast
therefore launches Numba's threads itself (``ensure_launched``, before the first parallel
kernel is compiled, loaded or called) and gives torch its count back. Numba's own count
follows torch's (``follow_torch_threads``, each parallel call: lrfast's parallel kernels
use as many threads as torch's ops would) unless the user set Numba's:
``NUMBA_NUM_THREADS`` in the environment, or ``numba.set_num_threads`` on this thread to
anything other than what lrfast last set there (before lrfast's first call: other than
all launched threads).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Callable
from typing import Any

import numba
import torch

__all__ = ["configure", "layer", "describe", "parallel_allowed", "run_parallel", "user_choice", "ensure_launched",
           "follow_torch_threads", "PREFERRED"]

PREFERRED = ("omp", "tbb", "workqueue")

_lock = threading.Lock()
_serialize: bool | None = None  # None until the layer is known
_forked_after_omp = False
_configured = False  # lrfast set the priority (configure)


def _parallel_module():
    from numba.np.ufunc import parallel

    return parallel


def _launched() -> bool:
    return bool(getattr(_parallel_module(), "_is_initialized", False))


def user_choice() -> str | None:
    """How the user chose a layer (None: they did not)."""
    for name in ("NUMBA_THREADING_LAYER", "NUMBA_THREADING_LAYER_PRIORITY"):
        if os.environ.get(name):
            return f"{name}={os.environ[name]}"
    if str(numba.config.THREADING_LAYER).lower() != "default":
        return f"numba.config.THREADING_LAYER={numba.config.THREADING_LAYER!r}"
    priority = list(numba.config.THREADING_LAYER_PRIORITY)
    if priority != ["tbb", "omp", "workqueue"] and not (_configured and priority == list(PREFERRED)):
        return f"numba.config.THREADING_LAYER_PRIORITY={list(numba.config.THREADING_LAYER_PRIORITY)!r}"
    return None


def configure() -> bool:
    """Make Numba prefer ``PREFERRED`` unless the user chose or a layer already runs.

    Returns True when lrfast set the priority. Called when lrfast's kernels are imported,
    before any of them runs.
    """
    global _configured
    if _launched() or user_choice() is not None:
        return False
    numba.config.THREADING_LAYER_PRIORITY = list(PREFERRED)
    _configured = True
    return True


def ensure_launched() -> None:
    """Launch Numba's threads if none run yet, leaving torch's thread count as it was
    (NOTE [torch's thread count])."""
    if _launched():
        return
    configure()  # as the kernels' import would have: the layer is the one they will get
    launch = getattr(_parallel_module(), "_launch_threads", None)
    if launch is None:  # pragma: no cover - a Numba without it launches on its first parallel call
        return
    before = torch.get_num_threads()
    launch()
    if torch.get_num_threads() != before:
        torch.set_num_threads(before)


_owned = threading.local()  # .count: what lrfast last set on this thread; -1: the user set Numba's


def follow_torch_threads() -> None:
    """Numba's thread count on this thread := torch's (at most the launched threads),
    unless the user set Numba's (NOTE [torch's thread count]). Call after ``ensure_launched``."""
    owned = getattr(_owned, "count", None)
    if owned == -1:
        return
    parallel = _parallel_module()
    current = parallel._get_num_threads()
    launched = int(numba.config.NUMBA_NUM_THREADS)
    if owned is None:
        if os.environ.get("NUMBA_NUM_THREADS") or current != launched:
            _owned.count = -1
            return
    elif current != owned:
        _owned.count = -1
        return
    wanted = max(1, min(torch.get_num_threads(), launched))
    if wanted != current:
        parallel._set_num_threads(wanted)
    _owned.count = wanted


def layer() -> str:
    """The threading layer in use, launching Numba's threads if none runs yet.

    >>> from lrfast._backend import cpu_threads as threads
    >>> threads.layer() in ("omp", "tbb", "workqueue")
    True
    """
    ensure_launched()
    return numba.threading_layer()


def describe() -> str:
    """One line for ``lrfast info``: the layer, who chose it, and how lrfast uses it."""
    name = layer()
    choice = user_choice()
    if choice is not None:
        why = f"chosen by {choice}"
    elif _configured:
        why = "lrfast's preference " + " > ".join(PREFERRED)
    else:
        why = "launched before lrfast was imported"
    notes = ["parallel kernel calls serialised (workqueue is not thread-safe)"] if name == "workqueue" else []
    if not parallel_allowed():
        notes.append("serial kernels only (forked child of an OpenMP process)")
    return f"{name} ({'; '.join([why] + notes)})"


def _after_fork_in_child() -> None:
    global _forked_after_omp
    if _launched() and numba.threading_layer() == "omp":
        _forked_after_omp = True


os.register_at_fork(after_in_child=_after_fork_in_child)


def parallel_allowed() -> bool:
    """False in a forked child of a process whose OpenMP threads already ran."""
    return not _forked_after_omp


def run_parallel(kernel: Callable[..., Any], *args: Any) -> Any:
    """Call a parallel kernel on as many threads as torch uses (NOTE [torch's thread count]);
    under workqueue, one thread at a time (NOTE [threading layer])."""
    global _serialize
    if _serialize is False:
        follow_torch_threads()
        return kernel(*args)
    ensure_launched()
    follow_torch_threads()
    with _lock:
        result = kernel(*args)
        if _serialize is None:
            _serialize = numba.threading_layer() == "workqueue"
        return result
