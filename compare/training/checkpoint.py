"""Checkpoints: both trained models and the settings that made them, in one folder.

    python -m compare train --batch-norm --epochs 1 --save runs/bn
    python -m compare evaluate --checkpoint runs/bn

A checkpoint folder holds
    config.json   the run's settings (the model spec among them), the data shape, the test accuracies
    scratch.pt    the scratch model's state dict (parameters and buffers, under PyTorch's key names)
    torch.pt      the torch twin's state dict
Both state dicts have the same keys and shapes, so each loads into the other implementation too.
They are read with `torch.load(..., weights_only=True)`: plain tensors, no code.
"""

from __future__ import annotations

import json
import pickle
import re
import textwrap
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from compare.base.errors import CheckpointError, UsageError
from compare.models import make_spec
from compare.training.config import Config
from compare.training.learners import Learner

FORMAT = 1  # bumped when the folder's layout changes
FILES = ("config.json", "scratch.pt", "torch.pt")
WEIGHTS_ONLY_REFUSAL = "Weights only load failed"  # how torch.load(weights_only=True) begins refusing a pickle
REFUSED_GLOBAL = re.compile(r"GLOBAL ([\w.]+)")  # the object it names: "GLOBAL posix.system", "GLOBAL a.Class"
CONFIG_FIELDS = ("dataset", "engine", "loss", "epochs", "batch_size", "lr", "optimizer", "momentum", "weight_decay",
                 "lr_schedule", "lr_step_size", "lr_gamma", "seed", "dtype")


@dataclass
class Checkpoint:
    config: Config  # the training run's settings (device: where it is loaded now)
    input_size: int
    num_classes: int
    states: dict[str, dict[str, Tensor]]  # "scratch", "torch" -> state dict
    accuracies: dict[str, float]  # test accuracies measured at the end of training


def learner_state(learner: Learner) -> dict[str, Tensor]:
    """A learner's parameters and buffers under PyTorch's key names, on the CPU."""
    return {name: t.detach().cpu().clone() for name, t in {**learner.named_parameters(),
                                                           **learner.named_buffers()}.items()}


def save(folder: str | Path, config: Config, learners: tuple[Learner, Learner], shape: dict[str, int],
         accuracies: dict[str, float]) -> Path:
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    for learner in learners:
        torch.save(learner_state(learner), folder / f"{learner.name}.pt")
    meta = dict(format=FORMAT, settings={k: getattr(config, k) for k in CONFIG_FIELDS},
                model=config.model.to_dict(), shape=shape, test_accuracy=accuracies)
    (folder / "config.json").write_text(json.dumps(meta, indent=2) + "\n")
    return folder


def unreadable(path: Path, error: Exception) -> CheckpointError:
    """The one-line error for a .pt file torch.load refuses: one that holds code, or one that is damaged."""
    message = str(error)
    if isinstance(error, pickle.UnpicklingError) and WEIGHTS_ONLY_REFUSAL in message:
        named = REFUSED_GLOBAL.search(message)
        what = f" (a pickled {named.group(1)})" if named else ""
        return CheckpointError(f"{path} holds objects that could run code when loaded{what}, not only tensors; it is "
                               "refused (torch.load weights_only=True). Re-save it with `train --save`")
    # torch's messages run to several lines: the first says what is wrong; shorten at a word, never inside one
    cause = textwrap.shorten((message.strip().splitlines() or [""])[0], width=160, placeholder=" ...")
    return CheckpointError(f"{path} cannot be read ({type(error).__name__}: {cause}); the file is damaged or not a "
                           "state dict; write it again with train --save")


def load(folder: str | Path, device: str = "cpu") -> Checkpoint:
    """Read a checkpoint folder; any problem is a CheckpointError that names the file and what is wrong."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"no checkpoint folder at {folder}; write one with `python -m compare train --save "
                              f"{folder}`")
    missing = [name for name in FILES if not (folder / name).is_file()]
    if missing:
        raise CheckpointError(f"checkpoint {folder} lacks {', '.join(missing)}; write it again with train --save")
    try:
        meta = json.loads((folder / "config.json").read_text())
        if meta.get("format") != FORMAT:
            raise CheckpointError(f"{folder / 'config.json'} is checkpoint format {meta.get('format')!r}, this "
                                  f"program reads format {FORMAT}; write it again with train --save")
        model = dict(meta["model"])
        family = model.pop("model")
        spec = make_spec(family, **{k: tuple(v) if isinstance(v, list) else v for k, v in model.items()})
        config = Config(**meta["settings"], model=spec, device=device)
        shape, accuracies = meta["shape"], meta["test_accuracy"]
        input_size, num_classes = int(shape["input_size"]), int(shape["num_classes"])
    except CheckpointError:
        raise
    except (ValueError, KeyError, TypeError, AttributeError, UsageError) as error:
        raise CheckpointError(f"{folder / 'config.json'} is damaged or not a checkpoint's ({type(error).__name__}: "
                              f"{error}); write it again with train --save") from None
    states = {}
    for side in ("scratch", "torch"):
        path = folder / f"{side}.pt"
        try:
            state = torch.load(path, map_location="cpu", weights_only=True)
        except Exception as error:  # truncated zip, pickle errors, foreign objects: all mean "unreadable"
            raise unreadable(path, error) from None
        if not isinstance(state, dict) or not all(isinstance(v, Tensor) for v in state.values()):
            raise CheckpointError(f"{path} does not hold a state dict of tensors")
        wrong = sorted(k for k, v in state.items() if v.is_floating_point() and v.dtype != config.torch_dtype)
        if wrong:
            raise CheckpointError(f"{path} holds {state[wrong[0]].dtype} tensors ({', '.join(wrong[:3])}) but "
                                  f"config.json says --dtype {config.dtype}: the files come from different runs")
        states[side] = state
    return Checkpoint(config, input_size, num_classes, states, accuracies)
