"""The settings of one comparison run, shared by every command (`python -m compare ...`)."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch


@dataclass
class Config:
    dataset: str = "mnist"  # "mnist" or "fashion-mnist"
    hidden: tuple[int, ...] = (16, 16)  # hidden layer sizes; the lesson's network is 784-16-16-10
    activation: str = "relu"  # activation function after each hidden layer
    loss: str = "cross-entropy"  # loss function: "cross-entropy" or "mse" (against one-hot targets)
    epochs: int = 3  # passes over the 60,000 training images
    batch_size: int = 32  # images per gradient step
    lr: float = 0.1  # learning rate: the step size of each update (at the start, when a schedule lowers it)
    optimizer: str = "sgd"  # "sgd", "momentum", "nesterov", "adam" or "adamw" (compare/options.py)
    momentum: float = 0.0  # momentum of "momentum" / "nesterov" (0 for the others)
    weight_decay: float = 0.0  # L2 weight decay (decoupled for "adamw")
    dropout: float = 0.0  # dropout probability after each hidden activation; 0: no dropout layers
    batch_norm: bool = False  # BatchNorm1d between each hidden Linear (then bias-free) and its activation
    # Learning rate per epoch: "none", "step" or "cosine". Cosine by default: it anneals the rate to 0 over
    # the run, so the last epoch takes small steps and the final accuracy is not at the mercy of the last
    # noisy batches (measured, 784-16-16-10, 3 seeds: 3 epochs 95.1-95.5% vs 93.4-94.4% at a constant rate).
    lr_schedule: str = "cosine"
    lr_step_size: int = 1  # epochs between decays of the "step" schedule
    lr_gamma: float = 0.1  # factor of each decay of the "step" schedule
    seed: int = 0  # seeds the initial weights and the batch order of both implementations
    dtype: str = "float32"  # "float32" or "float64"
    device: str = "cpu"  # "cpu" or "cuda" ("auto" is resolved before a Config is made)
    data_root: str = "data"  # folder holding mnist/ and fashion-mnist/
    report: str | None = None  # JSON report path, or None
    extra: dict = field(default_factory=dict)  # command-specific settings (recorded in the report)

    @property
    def torch_dtype(self) -> torch.dtype:
        return {"float32": torch.float32, "float64": torch.float64}[self.dtype]

    def to_dict(self) -> dict:
        d = asdict(self)
        d["hidden"] = list(self.hidden)
        d.update(d.pop("extra"))
        d["data_root"] = str(Path(self.data_root))
        return d
