"""Lightning training of the networks. Only fit() imports this module; scoring never imports Lightning."""

from __future__ import annotations

import json
import logging
import signal
import tempfile
import threading
import time
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import lightning as L
import torch
from torch import nn
from torch.utils.data import DataLoader, IterableDataset

from asdkit.detectors.deep import TrainerConfig
from asdkit.errors import AsdkitError

#: (network, batch) -> scalar loss; a batch is a tensor of items or a tuple of tensors (items, labels, ...).
LossFn = Callable[[nn.Module, Any], torch.Tensor]
#: Epoch index -> factor on the learning rate (torch's LambdaLR), e.g. a ramp-down at the end of training.
LrLambda = Callable[[int], float]
#: (network, learning rate) -> the optimiser's parameter groups (e.g. layer-wise learning rates), or None.
ParamGroups = Callable[[nn.Module, float], list[dict[str, Any]] | None]


def _batch_len(batch: Any) -> int:
    return len(batch[0]) if isinstance(batch, (tuple, list)) else len(batch)


class NetworkModule(L.LightningModule):
    """Wraps a plain network and a loss so that Lightning runs the loop (and DDP when asked)."""

    def __init__(
        self,
        network: nn.Module,
        loss_fn: LossFn,
        learning_rate: float,
        lr_lambda: LrLambda | None = None,
        param_groups: ParamGroups | None = None,
    ) -> None:
        super().__init__()
        self.network = network
        self.loss_fn = loss_fn
        self.learning_rate = learning_rate
        self.lr_lambda = lr_lambda
        self.param_groups = param_groups

    def training_step(self, batch: Any, batch_idx: int) -> torch.Tensor:
        loss = self.loss_fn(self.network, batch)
        size = _batch_len(batch)
        self.log(
            "train_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=size, sync_dist=True
        )
        return loss

    def validation_step(self, batch: Any, batch_idx: int) -> None:
        loss = self.loss_fn(self.network, batch)
        size = _batch_len(batch)
        self.log(
            "val_loss", loss, on_step=False, on_epoch=True, prog_bar=True, batch_size=size, sync_dist=True
        )

    def configure_optimizers(self) -> Any:
        groups = None if self.param_groups is None else self.param_groups(self.network, self.learning_rate)
        params: Any = self.network.parameters() if groups is None else groups
        optimizer = torch.optim.Adam(params, lr=self.learning_rate)
        if self.lr_lambda is None:
            return optimizer
        schedule = torch.optim.lr_scheduler.LambdaLR(optimizer, self.lr_lambda)
        return {"optimizer": optimizer, "lr_scheduler": {"scheduler": schedule, "interval": "epoch"}}


class _History(L.Callback):
    """Keeps per-epoch losses and wall-clock seconds so that detectors can report training curves.

    The global rank 0 also writes them to ``path``: under ``ddp_spawn`` the training runs in other
    processes, on copies of this callback, and the file is how the curve comes back.
    """

    def __init__(self, path: Path) -> None:
        self.path = path
        self.epochs: list[dict[str, float]] = []
        self._lr: float | None = None
        self._start = 0.0

    def on_train_epoch_start(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        # read here: an epoch-interval LR scheduler has already stepped by on_train_epoch_end
        self._lr = float(trainer.optimizers[0].param_groups[0]["lr"]) if trainer.optimizers else None
        self._start = time.perf_counter()

    def on_train_epoch_end(self, trainer: L.Trainer, module: L.LightningModule) -> None:
        row = {"epoch": float(trainer.current_epoch), "seconds": time.perf_counter() - self._start}
        row.update({k: float(v) for k, v in trainer.callback_metrics.items() if k.endswith("loss")})
        if self._lr is not None:
            row["lr"] = self._lr  # the rate this epoch trained with
        self.epochs.append(row)
        if trainer.is_global_zero:
            self.path.write_text(json.dumps(self.epochs))

    def recorded(self) -> list[dict[str, float]]:
        """The curve rank 0 trained, wherever it ran (this process, or a spawned one)."""
        if self.path.is_file():
            return [dict(row) for row in json.loads(self.path.read_text())]
        return self.epochs


def _tensorboard(log_dir: Path | None) -> Any:
    """Lightning's TensorBoard logger writing to ``log_dir``, or False for none."""
    if log_dir is None:
        return False
    try:
        from lightning.pytorch.loggers import TensorBoardLogger

        return TensorBoardLogger(save_dir=str(log_dir), name="", version="", default_hp_metric=False)
    except ModuleNotFoundError:
        raise AsdkitError(
            "TensorBoard logging needs the tensorboard package: pip install 'asdkit[tracking]'"
        ) from None


def _fit_interruptible(trainer: L.Trainer, module: L.LightningModule, *loaders: DataLoader | None) -> None:
    """``trainer.fit``, but Ctrl-C stays a KeyboardInterrupt.

    On Ctrl-C Lightning shuts down, ignores SIGINT from then on and calls ``sys.exit(1)``, which would read
    as a failure and leave the rest of the run deaf to Ctrl-C: the handler is restored and the interrupt
    raised again, so the run ends as "interrupted" with exit code 130.
    """
    handler = signal.getsignal(signal.SIGINT)
    try:
        trainer.fit(module, *loaders)
    except SystemExit as exc:
        if not isinstance(exc.__context__, KeyboardInterrupt):
            raise
        if threading.current_thread() is threading.main_thread():
            signal.signal(signal.SIGINT, handler)
        raise KeyboardInterrupt from None


def fit_network(
    network: nn.Module,
    loss_fn: LossFn,
    train_data: IterableDataset,
    val_data: IterableDataset | None,
    config: TrainerConfig,
    lr_lambda: LrLambda | None = None,
    param_groups: ParamGroups | None = None,
) -> list[dict[str, float]]:
    """Train ``network`` in place as ``config`` says; returns the per-epoch loss (and LR) history.

    ``lr_lambda(epoch)`` scales the learning rate per epoch (LambdaLR); None keeps it constant.
    ``param_groups(network, learning_rate)`` gives the optimiser's groups (None from it or instead of it:
    every parameter at one rate).
    TensorBoard event files go to ``config.log_dir`` when it is set.
    """
    L.seed_everything(config.seed, workers=True, verbose=False)
    for name in ("lightning.pytorch", "lightning.fabric", "pytorch_lightning"):
        logging.getLogger(name).setLevel(logging.WARNING)
    module = NetworkModule(network, loss_fn, config.learning_rate, lr_lambda, param_groups)
    logger = _tensorboard(config.log_dir)
    with tempfile.TemporaryDirectory(prefix="asdkit-train-") as root, warnings.catch_warnings():
        history = _History(Path(root) / "history.json")
        callbacks: list[L.Callback] = [history]
        if logger is not False:
            callbacks.append(L.pytorch.callbacks.LearningRateMonitor(logging_interval="epoch"))
        warnings.filterwarnings("ignore", message=".*does not have many workers.*")
        warnings.filterwarnings("ignore", message=".*IterableDataset.*__len__.*")
        warnings.filterwarnings("ignore", message=".*treespec.*")  # Lightning vs newer torch, harmless
        warnings.filterwarnings("ignore", message=".*no `val_dataloader`.*")  # training without hold-out
        trainer = L.Trainer(
            max_epochs=config.epochs,
            accelerator=config.accelerator,
            devices=config.devices,
            strategy=config.strategy,
            precision=config.precision,  # type: ignore[arg-type]
            logger=logger,
            enable_checkpointing=False,
            enable_model_summary=False,
            enable_progress_bar=config.progress,
            deterministic=True,
            callbacks=callbacks,
            default_root_dir=root,
            num_sanity_val_steps=0,
        )
        train_loader = DataLoader(train_data, batch_size=None)
        val_loader = DataLoader(val_data, batch_size=None) if val_data is not None else None
        _fit_interruptible(trainer, module, train_loader, val_loader)
        epochs = history.recorded()
    network.cpu().eval()
    return epochs
