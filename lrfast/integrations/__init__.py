"""Bridges to training frameworks (docs/integrations.md).

Each submodule is import-light: it imports neither the framework it mirrors nor anything
beyond torch and lrfast, so it can be used (and tested) where the framework is absent.

- :mod:`lrfast.integrations.transformers` -- twins of Hugging Face transformers' schedule
  helpers (``get_cosine_schedule_with_warmup``, ...) returning lrfast schedulers.

PyTorch Lightning, the transformers ``Trainer`` and FSDP2 / ``torch.distributed.checkpoint``
need no bridge: lrfast's schedulers are torch ``LRScheduler`` objects and work as they are.
"""

__all__: list[str] = []
