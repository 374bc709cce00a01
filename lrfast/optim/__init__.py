"""Fused optimizers: torch's SGD, Adam and AdamW, one kernel call per (device, dtype).

Same constructor arguments, defaults, errors and ``state_dict`` layout as
``torch.optim`` (checkpoints move both ways), and the learning rate may be an
:mod:`lrfast.schedules` curve evaluated inside the kernel. An :mod:`lrfast.lr_scheduler`
scheduler built on one of these optimizers runs inside its kernel too. CPU parameters
use Numba kernels (torch's own code, with a warning, where Numba is missing); see
docs/optim.md.

>>> import torch, lrfast
>>> p = torch.nn.Parameter(torch.zeros(4))
>>> opt = lrfast.optim.AdamW([p], lr=lrfast.schedules.cosine_decay(1e-3, decay_steps=100))
>>> isinstance(opt, torch.optim.AdamW)
True
"""

from ._adam import Adam, AdamW
from ._scheduled import ScheduledOptimizer
from ._sgd import SGD
from ._status import backend_status

__all__ = ["SGD", "Adam", "AdamW", "ScheduledOptimizer", "backend_status"]
