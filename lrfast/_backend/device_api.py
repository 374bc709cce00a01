"""The seam between lrfast's Python CUDA layer and the CUDA runtime it drives.

Every torch CUDA call the CUDA path makes -- which tensors count as CUDA tensors, uploads
from pinned memory, the current stream, events, graph-capture state, and which compiled
module launches the kernels -- goes through the *active device API* of this module:

- :data:`CUDA` (the default): torch's CUDA runtime and the real kernels of ``lrfast._C``;
- :class:`EmulatedDevice`: NOTE [emulated device] -- the same Python code, run on the CPU
  against ``lrfast._C_emu`` (the ``.cu`` kernels compiled for the host, csrc/emu/).

NOTE [emulated device] While an :class:`EmulatedDevice` is active, **the CPU is the
emulated GPU**: every CPU tensor handed to lrfast is treated as a CUDA tensor (lrfast's
optimizers step it through ``lrfast._backend.cuda_optim``, a scheduler writes a CPU tensor
``lr`` with the scalar-writer kernel, ReduceLROnPlateau decides a CPU metric "on the
device"), and the integer addresses given to the kernels are host addresses, which is
what ``_C_emu``'s launchers take. The other choices were weighed: a tensor subclass or a
PrivateUse1 backend that reports ``device.type == "cuda"`` would have made every torch op
on those tensors go through a dispatch layer of our own (the layer under test would no
longer be the one a GPU runs), and marking individual tensors would have needed a check
per tensor per step on the real path. Switching the whole CPU over costs the real path
nothing but the call to :func:`is_device`, and is never on by accident: it takes
``LRFAST_EMULATED_CUDA=1`` in the environment at import, or :func:`use` (a test fixture).
While it is on, lrfast's CPU path (the Numba kernels) is unreachable.

Uploads on the emulated device copy (``clone``): "device" buffers never alias the host
arrays they came from, so a missing upload shows as a stale value, as on a GPU. Streams and
events are no-ops (everything runs in order, on the calling thread). A captured graph is
an :class:`EmulatedGraph`: the kernel launches made while capturing, with their arguments
(addresses and values) as they were, replayed in order by ``replay()``. Torch ops between
launches are not recorded (on a GPU they would be captured too); lrfast's capturable steps
make none, which is what the capture guards enforce.

NOTE [sync counting] :func:`count_syncs` counts the device->host reads made inside it:
every call that makes the host wait for a device tensor's value -- ``.item()``,
``.tolist()``, ``.numpy()``, ``.cpu()``, ``float(t)`` / ``int(t)`` / ``bool(t)`` /
``operator.index(t)``, ``np.asarray(t)``, formatting or ``repr`` of a tensor, ``torch.equal``
/ ``allclose`` / ``is_nonzero``, the ops whose output size depends on the data
(``nonzero``, ``masked_select``, ``unique``), a blocking ``copy_`` of a device tensor into
host memory -- plus the device API's own waits (``synchronize()``, an event's or a stream's
``synchronize()``). A *device tensor* is one the active API's :func:`is_device` accepts: on
the emulated device every CPU tensor but the API's host staging buffers
(``pinned_empty``), on a GPU the CUDA tensors. Reads are seen through a
``TorchFunctionMode`` pushed only while counting, so code outside the block pays nothing.
Not seen: a ``torch.cuda.Event`` or stream synced directly (on a GPU), ``.to("cpu")``, and
syncs inside C++ (the kernels make none); on a GPU, torch's ``set_sync_debug_mode`` sees those.

>>> from lrfast._backend import device_api
>>> device_api.active().name
'cuda'
"""

from __future__ import annotations

import contextlib
import os
import weakref
from collections.abc import Iterator
from types import ModuleType
from typing import Any

import torch
from torch.overrides import TorchFunctionMode

__all__ = ["CUDA", "CudaRuntime", "EmulatedDevice", "EmulatedGraph", "SyncCounter", "active", "use", "emulated",
           "is_device", "is_capturing", "kernels", "upload", "refresh", "count_syncs", "ENVIRONMENT_VARIABLE"]

ENVIRONMENT_VARIABLE = "LRFAST_EMULATED_CUDA"


class CudaRuntime:
    """The real thing: torch's CUDA runtime, kernels from ``lrfast._C``."""

    name = "cuda"
    emulated = False

    def is_device(self, device: torch.device) -> bool:
        return device.type == "cuda"

    def kernels(self) -> ModuleType:
        from .. import _C

        return _C

    def upload(self, host: torch.Tensor, device: torch.device) -> torch.Tensor:
        """A device copy of a CPU tensor, through pinned memory, without a host sync (the
        caching host allocator keeps the pinned block until the copy has run)."""
        return host.pin_memory().to(device, non_blocking=True)

    def refresh(self, target: torch.Tensor, host: torch.Tensor) -> None:
        target.copy_(host.pin_memory(), non_blocking=True)

    def pinned_empty(self, n: int, dtype: torch.dtype) -> torch.Tensor:
        return torch.empty(n, dtype=dtype).pin_memory()

    def current_stream(self, device: torch.device) -> Any:
        return torch.cuda.current_stream(device)

    def device_index(self, device: torch.device) -> int:
        return device.index if device.index is not None else torch.cuda.current_device()

    def event(self) -> Any:
        return torch.cuda.Event()

    def is_capturing(self) -> bool:
        # nothing captures before CUDA is initialized (and a CPU-only torch has no capture call)
        return torch.cuda.is_initialized() and torch.cuda.is_current_stream_capturing()

    def synchronize(self) -> None:
        _note_sync("synchronize")
        torch.cuda.synchronize()

    def graph(self) -> Any:
        return torch.cuda.CUDAGraph()

    @contextlib.contextmanager
    def capture(self, graph: Any) -> Iterator[None]:
        """torch's capture recipe: capture on a side stream that waits for the current one."""
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side), torch.cuda.graph(graph):
            yield
        torch.cuda.current_stream().wait_stream(side)


class _Stream:
    """The emulated device's only stream: launches run at once, in order."""

    cuda_stream = 0

    def synchronize(self) -> None:
        _note_sync("Stream.synchronize")

    def wait_stream(self, other: _Stream) -> None:
        pass


class _Event:
    """Recorded work is already done on the emulated device."""

    def record(self, stream: _Stream | None = None) -> None:
        pass

    def synchronize(self) -> None:
        _note_sync("Event.synchronize")


class EmulatedGraph:
    """A "CUDA graph" of the emulated device: the launches captured, replayed in order.

    Like a real graph it holds addresses, not tensors: a buffer freed after capture is
    read (or written) at its old address by ``replay()``.
    """

    def __init__(self) -> None:
        self.launches: list[tuple[Any, tuple, dict]] = []
        self.captured = False

    def replay(self) -> None:
        if not self.captured:
            raise RuntimeError("EmulatedGraph.replay: nothing was captured into this graph yet")
        for launch, args, kwargs in self.launches:
            launch(*args, **kwargs)


class _Recorder:
    """``kernels()`` while capturing: each ``cuda_*`` launch is recorded into the graph."""

    def __init__(self, module: Any, graph: EmulatedGraph) -> None:
        self._module = module
        self._graph = graph

    def __getattr__(self, name: str) -> Any:
        value = getattr(self._module, name)
        if not name.startswith("cuda_") or name == "cuda_device_count":
            return value

        def record(*args, **kwargs):
            self._graph.launches.append((value, args, kwargs))

        return record


class EmulatedDevice:
    """NOTE [emulated device]: CPU tensors are the device's tensors; kernels from
    ``kernels`` (default ``lrfast._C_emu``; any object with ``_C``'s ``cuda_*`` launchers,
    e.g. launchers that do nothing, to time the host side alone)."""

    name = "emulated"
    emulated = True

    def __init__(self, kernels: Any = None) -> None:
        if kernels is None:
            try:
                from .. import _C_emu as kernels
            except ImportError as exc:
                raise RuntimeError(
                    f"lrfast: the emulated CUDA device needs lrfast._C_emu (the kernels built for the host, "
                    f"csrc/emu/), which this install lacks ({exc}); reinstall lrfast with its emulator built"
                ) from None
        self._kernels = kernels
        self._graph: EmulatedGraph | None = None
        self._stream = _Stream()

    def is_device(self, device: torch.device) -> bool:
        return device.type == "cpu"

    def kernels(self) -> Any:
        if self._graph is not None:
            return _Recorder(self._kernels, self._graph)
        return self._kernels

    def upload(self, host: torch.Tensor, device: torch.device) -> torch.Tensor:
        return host.clone()  # never an alias of the host array (NOTE [emulated device])

    def refresh(self, target: torch.Tensor, host: torch.Tensor) -> None:
        target.copy_(host)

    def pinned_empty(self, n: int, dtype: torch.dtype) -> torch.Tensor:
        """A host staging buffer: a CPU tensor that is *not* the device's (NOTE [sync counting])."""
        buffer = torch.empty(n, dtype=dtype)
        key = buffer.untyped_storage().data_ptr()
        _host_buffers.add(key)
        weakref.finalize(buffer, _host_buffers.discard, key)
        return buffer

    def current_stream(self, device: torch.device) -> _Stream:
        return self._stream

    def device_index(self, device: torch.device) -> int:
        return 0

    def event(self) -> _Event:
        return _Event()

    def is_capturing(self) -> bool:
        return self._graph is not None

    def synchronize(self) -> None:
        _note_sync("synchronize")

    def graph(self) -> EmulatedGraph:
        return EmulatedGraph()

    @contextlib.contextmanager
    def capture(self, graph: EmulatedGraph) -> Iterator[None]:
        if self._graph is not None:
            raise RuntimeError("EmulatedDevice.capture: already capturing a graph")
        if graph.captured:
            raise RuntimeError("EmulatedDevice.capture: this graph was captured already")
        self._graph = graph
        try:
            yield
        finally:
            self._graph = None
        graph.captured = True


CUDA = CudaRuntime()


def _from_environment() -> CudaRuntime | EmulatedDevice:
    flag = os.environ.get(ENVIRONMENT_VARIABLE, "")
    if flag in ("", "0"):
        return CUDA
    if flag != "1":
        raise ValueError(f"lrfast: {ENVIRONMENT_VARIABLE} must be 1 (emulate CUDA on the CPU) or 0, got {flag!r}")
    return EmulatedDevice()


_active: CudaRuntime | EmulatedDevice = _from_environment()


def active() -> CudaRuntime | EmulatedDevice:
    """The device API in use (:data:`CUDA` unless emulation was asked for)."""
    return _active


@contextlib.contextmanager
def use(api: CudaRuntime | EmulatedDevice) -> Iterator[CudaRuntime | EmulatedDevice]:
    """Make ``api`` the active device API inside the block (tests: NOTE [emulated device]).

    >>> import torch
    >>> from lrfast._backend import device_api
    >>> with device_api.use(device_api.CUDA) as api:
    ...     api.is_device(torch.device("cpu"))
    False
    """
    global _active
    previous = _active
    _active = api
    try:
        yield api
    finally:
        _active = previous


def emulated(order: str = "forward", seed: int = 0, kernels: Any = None) -> EmulatedDevice:
    """An :class:`EmulatedDevice` whose ``_C_emu`` runs each block's threads in ``order``
    ("forward", "reversed" or "shuffled" with ``seed``); pass it to :func:`use`."""
    device = EmulatedDevice(kernels)
    set_order = getattr(device._kernels, "emu_set_thread_order", None)
    if set_order is not None:
        set_order(order, seed)
    return device


# The call sites' short forms (one global lookup each).
def is_device(device: torch.device) -> bool:
    """Whether tensors on ``device`` take lrfast's CUDA path (NOTE [emulated device])."""
    return _active.is_device(device)


def is_capturing() -> bool:
    return _active.is_capturing()


def kernels() -> Any:
    """The module whose ``cuda_*`` functions launch the kernels (recording while capturing)."""
    return _active.kernels()


def upload(host: torch.Tensor, device: torch.device) -> torch.Tensor:
    return _active.upload(host, device)


def refresh(target: torch.Tensor, host: torch.Tensor) -> None:
    _active.refresh(target, host)


# -- counting host syncs (NOTE [sync counting]) ----------------------------------------------------

_host_buffers: set[int] = set()  # storages of the emulated device's host staging buffers
_counters: list[SyncCounter] = []  # the open count_syncs blocks

# Tensor methods and torch functions that make the host wait for a device tensor's value.
_SYNCING = frozenset({"item", "tolist", "numpy", "cpu", "__float__", "__int__", "__bool__", "__index__",
                      "__complex__", "__array__", "__format__", "__repr__", "equal", "allclose", "is_nonzero",
                      "nonzero", "masked_select", "unique"})


class SyncCounter:
    """The host syncs seen inside one :func:`count_syncs` block: ``count`` and, in order,
    ``reads`` (what synced: ``"item"``, ``"__float__"``, ``"Event.synchronize"``, ...)."""

    def __init__(self) -> None:
        self.count = 0
        self.reads: list[str] = []

    def __repr__(self) -> str:
        return f"SyncCounter(count={self.count}, reads={self.reads!r})"


def _note_sync(what: str) -> None:
    for counter in _counters:
        counter.count += 1
        counter.reads.append(what)


def _on_device(value: Any) -> bool:
    """Whether ``value`` is a tensor in device memory for the active API."""
    if not isinstance(value, torch.Tensor) or not _active.is_device(value.device):
        return False
    return not (_active.emulated and value.untyped_storage().data_ptr() in _host_buffers)


class _SyncCountingMode(TorchFunctionMode):
    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _SYNCING:
            if any(_on_device(a) for a in args) or any(_on_device(v) for v in kwargs.values()):
                _note_sync(name)
        elif name == "copy_" and len(args) >= 2 and not _on_device(args[0]) and _on_device(args[1]):
            if not (args[2] if len(args) > 2 else kwargs.get("non_blocking", False)):
                _note_sync("copy_ to host")
        return func(*args, **kwargs)


@contextlib.contextmanager
def count_syncs() -> Iterator[SyncCounter]:
    """Count the host syncs made inside the block on the active device (NOTE [sync counting]).

    >>> import torch
    >>> from lrfast._backend import device_api
    >>> with device_api.use(device_api.emulated()), device_api.count_syncs() as syncs:
    ...     t = torch.ones(2)  # a device tensor on the emulated device
    ...     u = t * 2          # no sync
    ...     v = u.sum().item()  # one
    >>> syncs.count, syncs.reads
    (1, ['item'])
    """
    counter = SyncCounter()
    outermost = not _counters  # one mode for all the open blocks: a read is seen once, by each
    _counters.append(counter)
    try:
        with _SyncCountingMode() if outermost else contextlib.nullcontext():
            yield counter
    finally:
        _counters.remove(counter)
