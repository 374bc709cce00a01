"""Tunables of lrfast's fused CPU optimizers, in one place so tests can shrink them.

Change them before the first ``optimizer.step()`` (the chunk map of a bucket is built
then and kept); ``optimizer.refresh()`` makes an optimizer rebuild it.
"""

from __future__ import annotations

__all__ = ["CHUNK_SIZE"]

# Elements per work item of the CPU kernels. Every tensor is cut into chunks of this
# many elements and the chunks of a whole bucket are shared among the threads, so one
# huge tensor and two thousand small ones both keep every core busy. 64 Ki float32
# elements are 256 KiB per stream: large enough that the per-chunk bookkeeping is
# noise, small enough to balance two threads on a 1M-element tensor.
CHUNK_SIZE: int = 65536
