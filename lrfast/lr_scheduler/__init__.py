"""Drop-in replacements for ``torch.optim.lr_scheduler``: same classes, same arguments,
same learning rates, computed in closed form (see docs/schedulers.md).

>>> import torch
>>> from lrfast import lr_scheduler
>>> opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=0.1)
>>> sched = lr_scheduler.CosineAnnealingLR(opt, T_max=10)
>>> isinstance(sched, torch.optim.lr_scheduler.CosineAnnealingLR)
True
"""

from ._base import LRScheduler
from ._classes import (
    SWALR,
    ConstantLR,
    CosineAnnealingLR,
    CosineAnnealingWarmRestarts,
    CyclicLR,
    ExponentialLR,
    LambdaLR,
    LinearLR,
    MultiplicativeLR,
    MultiStepLR,
    OneCycleLR,
    PolynomialLR,
    StepLR,
)
from ._composite import ChainedScheduler, SequentialLR
from ._functional import FunctionalLR
from ._graph import graph_lr_step
from ._plateau import ReduceLROnPlateau

__all__ = [
    "LRScheduler", "LambdaLR", "MultiplicativeLR", "StepLR", "MultiStepLR", "ConstantLR", "LinearLR",
    "ExponentialLR", "SequentialLR", "PolynomialLR", "CosineAnnealingLR", "ChainedScheduler",
    "ReduceLROnPlateau", "CyclicLR", "OneCycleLR", "CosineAnnealingWarmRestarts", "SWALR",
    "FunctionalLR", "graph_lr_step",
]
