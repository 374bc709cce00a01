"""Tunables of lrfast's fused CPU optimizers, in one place so tests can shrink them.

Change them before the first ``optimizer.step()`` (the chunk map of a bucket is built
then and kept); ``optimizer.refresh()`` makes an optimizer rebuild it.
"""

from __future__ import annotations

__all__ = ["CHUNK_SIZE", "PARALLEL_MIN_CHUNKS"]

# Elements per work item of the CPU kernels. Every tensor is cut into chunks of this
# many elements and the chunks of a whole bucket are shared among the threads, so one
# huge tensor and two thousand small ones both keep every core busy. 16 Ki elements
# (64 KiB per float32 stream, some 300 KiB for AdamW's five streams: within a core's
# L2) keep the per-chunk bookkeeping negligible and still split a 64K-element tensor
# over the threads; on the 2-core development machine 16 Ki beat 4, 8 and 64 Ki at
# 64K, 1M and 16M elements.
CHUNK_SIZE: int = 16384

# A bucket of fewer chunks than this runs the serial twin of its kernel on the calling
# thread (NOTE [serial twins] in lrfast/_backend/cpu_kernels.py): a serial call never enters
# the threading layer. Below 8 chunks (128 Ki elements, some 100-200 us of AdamW on one
# core) waking a team saves little on a quiet machine and can cost a scheduler quantum
# per step on a busy one: on the shared 2-core machine (load 12) a 17K-element AdamW
# step took 16-44 ms through GNU OpenMP and under 0.2 ms serially (issue 14).
PARALLEL_MIN_CHUNKS: int = 8
