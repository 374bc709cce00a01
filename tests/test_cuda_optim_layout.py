"""The CUDA optimizer backend's table slots equal the compiled header's (fused_tables.h).
Runs without a GPU: the layout is a property of the build."""

from __future__ import annotations

import pytest

from lrfast import _C

if not _C.has_cuda():
    pytest.skip("lrfast was built without CUDA: no fused tables to compare", allow_module_level=True)

from lrfast._backend import cuda_optim as B  # noqa: E402


def test_tensor_slots_match_header():
    fused = _C.layout()["fused"]
    ours = {"param": B.T_PARAM, "grad": B.T_GRAD, "state0": B.T_STATE0, "state1": B.T_STATE1, "state2": B.T_STATE2,
            "step": B.T_STEP, "numel": B.T_NUMEL, "group": B.T_GROUP, "flags": B.T_FLAGS,
            "chunk_start": B.T_CHUNK_START}
    assert ours == fused["tensor"]
    assert B.TENSOR_SLOTS == fused["tensor_slots"]


def test_group_slots_match_header():
    fused = _C.layout()["fused"]
    ours = {"lr": B.G_LR, "beta1": B.G_BETA1, "beta2": B.G_BETA2, "eps": B.G_EPS, "weight_decay": B.G_WEIGHT_DECAY,
            "dampening": B.G_DAMPENING, "lr_source": B.G_LR_SOURCE, "beta1_scheduled": B.G_BETA1_SCHEDULED,
            "nesterov": B.G_NESTEROV, "maximize": B.G_MAXIMIZE, "amsgrad": B.G_AMSGRAD,
            "lr_tensor_dtype": B.G_LR_TENSOR_DTYPE, "schedule_step": B.G_SCHEDULE_STEP, "decoupled": B.G_DECOUPLED}
    assert ours == fused["group"]
    assert B.GROUP_SLOTS == fused["group_slots"]
    assert fused["chunk_size"] % (fused["ilp"] * 4) == 0
