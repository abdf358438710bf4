"""The settings of one comparison run, shared by every command (`python -m compare ...`).

    >>> from compare.training.config import Config
    >>> from compare.models import make_spec
    >>> Config(model=make_spec("mlp", hidden=(64,)), dtype="float64", epochs=1)

It lives with the training core, above the model registry: its `model` is a complete ModelSpec, made by
compare.models (the default one too), and the learners, the loop and the verdict read it. The command line
fills one in (compare/options/groups.py) but is not needed to make one.
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from pathlib import Path

import torch

from compare.models import ModelSpec, make_spec

ENGINE_CHOICES = ("hand", "autograd")  # how the scratch side gets its gradients


@dataclass
class Config:
    dataset: str = "mnist"  # "mnist" or "fashion-mnist" (the playground: a 2-D toy dataset)
    model: ModelSpec = field(default_factory=make_spec)  # the network: a family and its options (compare/models/)
    engine: str = "hand"  # scratch side: "hand" (hand-written backward) or "autograd" (the scratch engine)
    loss: str = "cross-entropy"  # loss function: "cross-entropy" or "mse" (against one-hot targets)
    epochs: int = 3  # passes over the 60,000 training images
    batch_size: int = 32  # images per gradient step
    lr: float = 0.1  # learning rate: the step size of each update (at the start, when a schedule lowers it)
    optimizer: str = "sgd"  # "sgd", "momentum", "nesterov", "adam" or "adamw" (compare/training/optimizers.py)
    momentum: float = 0.0  # momentum of "momentum" / "nesterov" (0 for the others)
    weight_decay: float = 0.0  # L2 weight decay (decoupled for "adamw")
    # L1 and L2 penalties on the weights, added to the loss (scratch/regularization.py): l1 * sum|w| + l2/2 * sum w^2
    l1: float = 0.0
    l2: float = 0.0
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
        """Every setting, the model's options flattened in ("model": "mlp", "hidden": [16, 16], ...)."""
        d = {f.name: getattr(self, f.name) for f in fields(self) if f.name not in ("model", "extra")}
        d.update(self.model.to_dict())
        d.update(self.extra)
        d["data_root"] = str(Path(self.data_root))
        return d

    @classmethod
    def field_names(cls) -> tuple[str, ...]:
        return tuple(f.name for f in fields(cls))
