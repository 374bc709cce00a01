"""The extension examples: Lion written on lrfast's Numba evaluator and as an out-of-tree
CUDA extension, each against a plain-PyTorch Lion under warmup + cosine for 50 steps."""

from __future__ import annotations

import importlib.util
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch

import lrfast
from lrfast import lr_scheduler

ROOT = Path(__file__).resolve().parents[1]
EXAMPLES = ROOT / "examples"
sys.path.insert(0, str(EXAMPLES))

from lion_reference import ReferenceLion  # noqa: E402

STEPS = 50


def warmup_cosine(module, opt):
    return module.SequentialLR(opt, [module.LinearLR(opt, start_factor=0.1, total_iters=10),
                                     module.CosineAnnealingLR(opt, T_max=40, eta_min=1e-4)], milestones=[10])


def make_params(device: str, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(n, generator=g).to(device) for n in (1, 33, 1000)]


def run(opt_factory, sched_module, device: str) -> list[list[torch.Tensor]]:
    params = [torch.nn.Parameter(p.clone()) for p in make_params(device)]
    opt = opt_factory([{"params": params[:2], "lr": 3e-2}, {"params": params[2:], "lr": 1e-2}])
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        sched = warmup_cosine(sched_module, opt)
    g = torch.Generator().manual_seed(1)
    trajectory = []
    for _ in range(STEPS):
        for p in params:
            p.grad = torch.randn(p.shape, generator=g).to(device)
        opt.step()
        sched.step()
        trajectory.append([p.detach().clone() for p in params])
    return trajectory


def assert_same_trajectory(ours, reference) -> None:
    for step, (a, b) in enumerate(zip(ours, reference)):
        for x, y in zip(a, b):
            torch.testing.assert_close(x, y, rtol=1e-6, atol=1e-6, msg=lambda m, step=step: f"step {step}: {m}")


def test_numba_lion_matches_reference():
    pytest.importorskip("numba", reason="the Numba example needs numba")
    from lion_numba import NumbaLion

    ours = run(lambda groups: NumbaLion(groups, betas=(0.9, 0.99), weight_decay=0.1), lr_scheduler, "cpu")
    reference = run(lambda groups: ReferenceLion(groups, betas=(0.9, 0.99), weight_decay=0.1),
                    torch.optim.lr_scheduler, "cpu")
    assert_same_trajectory(ours, reference)
    assert not torch.equal(ours[0][2], ours[-1][2])  # it trained


def test_python_lion_matches_reference():
    from lion_python import PythonLion

    ours = run(lambda groups: PythonLion(groups, betas=(0.9, 0.99), weight_decay=0.1), lr_scheduler, "cpu")
    reference = run(lambda groups: ReferenceLion(groups, betas=(0.9, 0.99), weight_decay=0.1),
                    torch.optim.lr_scheduler, "cpu")
    assert_same_trajectory(ours, reference)


def test_python_lion_with_a_schedule_as_lr_keeps_its_count_in_the_state_dict():
    from lion_python import PythonLion

    from lrfast import schedules

    schedule = schedules.warmup_cosine_decay(0.0, 3e-2, warmup_steps=10, decay_steps=50)
    params = [torch.nn.Parameter(p) for p in make_params("cpu")]
    opt = PythonLion(params, lr=schedule, weight_decay=0.1)
    ref_params = [torch.nn.Parameter(p) for p in make_params("cpu")]
    ref = ReferenceLion(ref_params, lr=schedule(0), weight_decay=0.1)
    g = torch.Generator().manual_seed(1)
    for step in range(STEPS):
        for p, q in zip(params, ref_params):
            p.grad = torch.randn(p.shape, generator=g)
            q.grad = p.grad.clone()
        opt.step()
        ref.step()
        ref.param_groups[0]["lr"] = schedule(step + 1)
        assert opt.param_groups[0]["lr"] == schedule(step + 1)
    for p, q in zip(params, ref_params):
        torch.testing.assert_close(p, q, rtol=1e-6, atol=1e-6)
    state = opt.state_dict()
    assert state["param_groups"][0]["lr_step"] == STEPS and "lr_schedule" not in state["param_groups"][0]
    fresh = PythonLion([torch.nn.Parameter(p.detach().clone()) for p in params], lr=schedule, weight_decay=0.1)
    fresh.load_state_dict(state)
    assert fresh.param_groups[0]["lr"] == schedule(STEPS)


def build_cuda_example(tmp_path: Path) -> Path:
    if shutil.which("nvcc") is None and not os.environ.get("CUDACXX"):
        pytest.skip("building the CUDA example needs nvcc, which is not on this machine")
    import pybind11

    build = tmp_path / "lion_build"
    env = dict(os.environ)
    # without a GPU the build is only checked: one architecture instead of the example's two
    archs = [] if torch.cuda.is_available() else ["-DCMAKE_CUDA_ARCHITECTURES=90"]
    subprocess.run(["cmake", "-S", str(EXAMPLES / "lion_cuda"), "-B", str(build),
                    f"-Dlrfast_DIR={lrfast.get_cmake_dir()}", f"-Dpybind11_DIR={pybind11.get_cmake_dir()}",
                    f"-DPython_EXECUTABLE={sys.executable}", "-DCMAKE_BUILD_TYPE=Release", *archs],
                   check=True, capture_output=True, text=True, env=env)
    subprocess.run(["cmake", "--build", str(build), "--parallel", "2"], check=True, capture_output=True, text=True)
    built = sorted(build.glob("lion_cuda_ext*.so"))
    assert built, f"no extension module in {build}"
    return built[0]


@pytest.fixture(scope="module")
def cuda_extension(tmp_path_factory):
    path = build_cuda_example(tmp_path_factory.mktemp("lion"))
    spec = importlib.util.spec_from_file_location("lion_cuda_ext", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.slow  # a CMake + nvcc build of the example
def test_cuda_lion_extension_builds_against_installed_headers(cuda_extension):
    assert cuda_extension.layout_version == lrfast.LAYOUT_VERSION
    assert callable(cuda_extension.lion_step)


@pytest.mark.gpu
@pytest.mark.slow
def test_cuda_lion_matches_reference(cuda_extension):
    sys.path.insert(0, str(EXAMPLES / "lion_cuda"))
    from lion_cuda import CudaLion

    ours = run(lambda groups: CudaLion(groups, cuda_extension, betas=(0.9, 0.99), weight_decay=0.1),
               lr_scheduler, "cuda")
    reference = run(lambda groups: ReferenceLion(groups, betas=(0.9, 0.99), weight_decay=0.1),
                    torch.optim.lr_scheduler, "cuda")
    assert_same_trajectory(ours, reference)
