"""PyTorch Lightning: lrfast schedulers returned from ``configure_optimizers``.

The same LightningModule trains twice on CPU, once with torch's scheduler classes and
once with lrfast's (interval "step" and "epoch", and ReduceLROnPlateau with a monitor);
LearningRateMonitor must log the same LR (and momentum) values at the same steps, and
the trained weights must agree.
"""

from __future__ import annotations

import pytest
import torch

import lrfast.lr_scheduler
import lrfast.optim

pl = pytest.importorskip("lightning.pytorch", reason='Lightning is not installed (pip install -e ".[test]")')
from lightning.pytorch.callbacks import LearningRateMonitor  # noqa: E402
from lightning.pytorch.loggers import Logger  # noqa: E402

REL = 1e-9
EPOCHS, BATCHES = 4, 6  # optimizer steps: EPOCHS * BATCHES

pytestmark = [
    pytest.mark.filterwarnings("ignore:.*does not have many workers.*"),
    pytest.mark.filterwarnings("ignore:.*LightningModule.log.*"),
    pytest.mark.filterwarnings("ignore:.*GPU available but not used.*"),
    pytest.mark.filterwarnings("ignore:.*isinstance\\(treespec, LeafSpec\\).*"),  # lightning's, on torch 2.13
]


class MemoryLogger(Logger):
    """Keeps what is logged in memory: no files anywhere."""

    def __init__(self) -> None:
        super().__init__()
        self.records: list[tuple[int, dict[str, float]]] = []

    @property
    def name(self) -> str:
        return "memory"

    @property
    def version(self) -> int:
        return 0

    def log_hyperparams(self, params, *args, **kwargs) -> None:
        pass

    def log_metrics(self, metrics: dict[str, float], step: int | None = None) -> None:
        self.records.append((step, dict(metrics)))

    def lr_records(self) -> list[tuple[int, dict[str, float]]]:
        """The LearningRateMonitor entries: (step, {name: value})."""
        out = []
        for step, metrics in self.records:
            lrs = {k: v for k, v in metrics.items() if k.startswith("lr-")}
            if lrs:
                out.append((step, lrs))
        return out


class Regressor(pl.LightningModule):
    """Two param groups (different LRs), AdamW, the scheduler ``make(module, optimizer)``."""

    def __init__(self, scheduler_module, make, interval: str, monitor: str | None = None) -> None:
        super().__init__()
        torch.manual_seed(0)
        self.net = torch.nn.Sequential(torch.nn.Linear(8, 16), torch.nn.Tanh(), torch.nn.Linear(16, 1))
        self.scheduler_module, self.make, self.interval, self.monitor = scheduler_module, make, interval, monitor

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.net(x), y)
        self.log("train_loss", loss, on_step=False, on_epoch=True)
        return loss

    def configure_optimizers(self):
        # lrfast's optimizer with lrfast's schedulers; torch's with torch's (the reference run)
        adamw = lrfast.optim.AdamW if self.scheduler_module is lrfast.lr_scheduler else torch.optim.AdamW
        optimizer = adamw([{"params": self.net[0].parameters(), "lr": 1e-2},
                           {"params": self.net[2].parameters(), "lr": 3e-3}], weight_decay=0.01)
        config = {"scheduler": self.make(self.scheduler_module, optimizer), "interval": self.interval}
        if self.monitor is not None:
            config["monitor"] = self.monitor
        return {"optimizer": optimizer, "lr_scheduler": config}


def _data() -> torch.utils.data.DataLoader:
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(8 * BATCHES, 8, generator=g), torch.randn(8 * BATCHES, 1, generator=g)
    return torch.utils.data.DataLoader(torch.utils.data.TensorDataset(x, y), batch_size=8, shuffle=False)


def _fit(tmp_path, scheduler_module, make, interval, monitor) -> tuple[MemoryLogger, Regressor]:
    model = Regressor(scheduler_module, make, interval, monitor)
    logger = MemoryLogger()
    trainer = pl.Trainer(accelerator="cpu", devices=1, max_epochs=EPOCHS, logger=logger, default_root_dir=tmp_path,
                         enable_checkpointing=False, enable_progress_bar=False, enable_model_summary=False,
                         log_every_n_steps=1, num_sanity_val_steps=0,
                         callbacks=[LearningRateMonitor(log_momentum=True)])
    trainer.fit(model, train_dataloaders=_data())
    return logger, model


TOTAL = EPOCHS * BATCHES
CASES = {
    # name: (make(M, optimizer), interval, monitor)
    "step-OneCycleLR": (lambda M, o: M.OneCycleLR(o, max_lr=[1e-2, 3e-3], total_steps=TOTAL), "step", None),
    "step-warmup-cosine": (lambda M, o: M.SequentialLR(o, [M.LinearLR(o, start_factor=0.1, total_iters=5),
                                                          M.CosineAnnealingLR(o, T_max=TOTAL - 5, eta_min=1e-4)],
                                                      milestones=[5]), "step", None),
    "epoch-MultiStepLR": (lambda M, o: M.MultiStepLR(o, milestones=[1, 3], gamma=0.5), "epoch", None),
    "epoch-ExponentialLR": (lambda M, o: M.ExponentialLR(o, gamma=0.7), "epoch", None),
    "epoch-ReduceLROnPlateau": (lambda M, o: M.ReduceLROnPlateau(o, factor=0.5, patience=0, threshold=0.5),
                                "epoch", "train_loss"),
}


@pytest.mark.parametrize("name", list(CASES))
def test_lr_monitor_logs_torchs_values(tmp_path, name) -> None:
    make, interval, monitor = CASES[name]
    torch_log, torch_model = _fit(tmp_path / "torch", torch.optim.lr_scheduler, make, interval, monitor)
    ours_log, ours_model = _fit(tmp_path / "lrfast", lrfast.lr_scheduler, make, interval, monitor)

    scheduler = ours_model.trainer.lr_scheduler_configs[0].scheduler
    assert type(scheduler).__module__.startswith("lrfast."), type(scheduler)
    want, got = torch_log.lr_records(), ours_log.lr_records()
    expected_entries = TOTAL if interval == "step" else EPOCHS
    assert len(want) == len(got) == expected_entries
    for (step_w, lrs_w), (step_g, lrs_g) in zip(want, got):
        assert step_g == step_w
        assert sorted(lrs_g) == sorted(lrs_w)
        assert {"lr-AdamW/pg1", "lr-AdamW/pg2", "lr-AdamW/pg1-momentum"} <= set(lrs_g)
        for key, value in lrs_w.items():
            assert lrs_g[key] == pytest.approx(value, rel=REL, abs=0), (step_g, key)
    # The schedule did something (a test of a constant LR would prove little).
    pg1 = [lrs["lr-AdamW/pg1"] for _, lrs in got]
    assert len(set(pg1)) > 1, pg1
    if name == "step-OneCycleLR":
        momentum = [lrs["lr-AdamW/pg1-momentum"] for _, lrs in got]
        assert min(momentum) < max(momentum) == pytest.approx(0.95)
    for (key, a), b in zip(ours_model.state_dict().items(), torch_model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=1e-6, atol=1e-7, msg=key)
