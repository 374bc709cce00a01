"""The CUDA evaluation of schedule.h agrees with the host's (lrfast._C.evaluate)."""

from __future__ import annotations

import numpy as np
import pytest

import lrfast
from lrfast import _C
from lrfast import schedules as S

torch = pytest.importorskip("torch", reason="the GPU tests move buffers with torch")

_CUDA_OK, _CUDA_WHY = lrfast.cuda_status()
if not _CUDA_OK:
    pytest.skip(f"lrfast's CUDA kernels cannot run here: {_CUDA_WHY}", allow_module_level=True)
if not torch.cuda.is_available():
    pytest.skip("torch.cuda is not available", allow_module_level=True)

pytestmark = pytest.mark.gpu

BIG = 2**31 + 5


def _schedules() -> list[S.Schedule]:
    return [
        S.constant(0.3),
        S.linear(1.0, 0.1, 1000, transition_begin=50),
        S.polynomial(1.0, 0.01, 1.7, 5_000),
        S.exponential_decay(1.0, 1000, 0.97),
        S.exponential_decay(1.0, 100, 0.5, staircase=True, end_value=1e-3),
        S.step_decay(0.1, 333, 0.7),
        S.multistep_decay(0.1, [10, 1000, 1000, 2500], 0.5),
        S.piecewise_constant(1.0, {100: 0.5, 1000: 0.1, 5000: 0.3}),
        S.cosine_decay(1.0, 7000, alpha=0.01, exponent=1.5),
        S.cosine_annealing(0.1, 1234, eta_min=1e-4),
        S.warm_restarts(0.1, 999, 1, 1e-5),
        S.warm_restarts(0.1, 7, 2, 1e-5),
        S.warm_restarts(0.1, 13, 3),
        S.cyclic(0.01, 0.1, 200, step_size_down=301),
        S.cyclic(0.01, 0.1, 50, mode="triangular2"),
        S.cyclic(0.01, 0.1, 50, mode="exp_range", gamma=0.9999),
        S.cyclic(0.01, 0.1, 50, scale_fn=lambda x: 1 / x, horizon=100),
        S.cyclic(0.01, 0.1, 50, scale_fn=lambda x: 0.5 + 0.5 / (1 + x), scale_mode="iterations",
                 horizon=2000),
        S.one_cycle(0.1, 8000),
        S.one_cycle(0.1, 3000, 0.2, "linear", three_phase=True),
        S.one_cycle_phases([999.0, 4999.0], [0.004, 0.1, 4e-7], False),
        S.inverse_sqrt(1.0, timescale=3000, warmup_steps=1000),
        S.sqrt_decay(1.0, 0.01, 6000),
        S.from_values(np.linspace(1.0, 0.0, 777)),
        S.warmup_cosine_decay(0.0, 1.0, 100, 9000, end_value=0.01),
        S.warmup_stable_decay(1.0, 100, 3000, 2000, decay_type="1-sqrt"),
        S.warmup_stable_decay(1.0, 100, 3000, 2000, decay_type="cosine"),
        S.join([S.join([S.linear(0.0, 1.0, 100), S.constant(1.0)], [100]), S.cosine_decay(1.0, 1000) * 0.5,
                S.multistep_decay(0.2, [10, 2000])], [500, 2000]),
        S.chain(S.warmup_constant(0.0, 1.0, 50), S.step_decay(0.1, 1000, 0.9), S.cyclic(0.5, 1.5, 100)),
    ]


def _steps() -> np.ndarray:
    rng = np.random.default_rng(2024)
    marks = [0, 1, 10, 50, 100, 500, 999, 1000, 1234, 2000, 2500, 3000, 5000, 7000, 8000, 9000, BIG, 2**40]
    near = [m + d for m in marks for d in (-1, 0, 1) if m + d >= 0]
    return np.concatenate([np.array(near, dtype=np.float64),
                           rng.integers(0, 10_000, size=3000).astype(np.float64),
                           rng.integers(0, 10_000_000, size=1000).astype(np.float64),
                           rng.uniform(0.0, 12_000.0, size=1000)])


def _on_device(array: np.ndarray, device) -> torch.Tensor:
    if array.size == 0:  # a valid pointer even when no segment reads the table
        array = np.zeros(1)
    return torch.from_numpy(np.ascontiguousarray(array, dtype=np.float64)).to(device)


def _evaluate_on_device(descriptors: np.ndarray, table: np.ndarray, steps: np.ndarray,
                        stream=None) -> np.ndarray:
    device = torch.device("cuda", torch.cuda.current_device())
    stream = stream or torch.cuda.current_stream(device)
    g, n = descriptors.shape[0], steps.shape[0]
    d_desc, d_table, d_steps = (_on_device(a, device) for a in (descriptors, table, steps))
    out = torch.full((g, n), float("nan"), dtype=torch.float64, device=device)
    torch.cuda.synchronize(device)
    _C.cuda_evaluate_schedules(d_desc.data_ptr(), g, d_table.data_ptr(), d_steps.data_ptr(), n,
                               out.data_ptr(), stream.cuda_stream, device.index)
    torch.cuda.synchronize(device)
    return out.cpu().numpy()


def _assert_close_per_group(device_values: np.ndarray, host: np.ndarray) -> None:
    assert device_values.shape == host.shape
    for g in range(host.shape[0]):
        # CUDA's cos/pow/log are within 2 ulps of glibc's; near a zero crossing (cosine
        # to eta_min = 0) that is an absolute error of a few ulps of the group's scale.
        scale = float(np.max(np.abs(host[g])))
        np.testing.assert_allclose(device_values[g], host[g], rtol=1e-15, atol=4e-16 * scale,
                                   err_msg=f"group {g}")


def test_device_matches_host_for_every_primitive_and_composite():
    packed = S.pack_many(_schedules())
    steps = _steps()
    host = _C.evaluate(packed.descriptors, packed.table, steps)
    assert np.all(np.isfinite(host))
    _assert_close_per_group(_evaluate_on_device(packed.descriptors, packed.table, steps), host)


def test_device_evaluation_on_a_side_stream():
    packed = S.pack_many(_schedules()[:5])
    steps = _steps()[:500]
    stream = torch.cuda.Stream()
    with torch.cuda.stream(stream):
        got = _evaluate_on_device(packed.descriptors, packed.table, steps, stream)
    _assert_close_per_group(got, _C.evaluate(packed.descriptors, packed.table, steps))


def test_device_grid_stride_covers_more_than_one_launch_grid():
    # 65535 blocks of 256 threads = 16,776,960 evaluations per grid pass
    packed = S.pack_many([S.linear(1.0, 0.0, 20_000_000), S.multistep_decay(1.0, [5_000_000, 17_000_000])])
    steps = np.arange(0.0, 8_500_000.0 * 2, 2.0)  # 2 groups x 8.5M steps = 17M evaluations
    got = _evaluate_on_device(packed.descriptors, packed.table, steps)
    assert not np.isnan(got).any()
    _assert_close_per_group(got, _C.evaluate(packed.descriptors, packed.table, steps))


def test_zero_work_launches_nothing():
    packed = S.pack_many([S.constant(1.0)])
    out = _evaluate_on_device(packed.descriptors, packed.table, np.zeros(0))
    assert out.shape == (1, 0)
