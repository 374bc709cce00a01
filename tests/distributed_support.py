"""Shared by the multi-process CPU tests (DDP, FSDP2): spawn ranks on a free loopback
port and make sure they all end, within a deadline."""

from __future__ import annotations

import socket
import time

import pytest
import torch.multiprocessing as mp


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def run_ranks(worker, out_dir: str, world: int, deadline_s: float, what: str) -> None:
    """Run ``worker(rank, port, out_dir)`` on ``world`` spawned processes; fail the test
    past ``deadline_s`` seconds, and kill whatever is still alive either way."""
    context = mp.start_processes(worker, args=(free_port(), out_dir), nprocs=world, join=False,
                                 start_method="spawn")
    deadline = time.monotonic() + deadline_s
    try:
        while not context.join(timeout=1):
            if time.monotonic() > deadline:
                pytest.fail(f"the {what} workers did not finish within {deadline_s} s")
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()
                process.join(5)
