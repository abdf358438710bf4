"""Every picture of `python -m compare train --plots DIR` that any family gets (the family adds its own)."""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path

from torch import Tensor

from compare.base import agreement
from compare.pictures.curves import training_curves
from compare.pictures.predictions import confusion_matrices, misclassified
from compare.pictures.weights import first_layer_weights


def train_figures(folder: str | Path, config, records: dict, learners: Sequence, data, confusions: dict[str, Tensor],
                  title: str) -> list[Path]:
    """Every picture of `python -m compare train --plots DIR`."""
    steps_per_epoch = math.ceil(len(data.x_train) / config.batch_size)
    paths = [training_curves(
        folder, {n: r.step_losses for n, r in records.items()},
        {"test accuracy": {n: [h.test_accuracy for h in r.history] for n, r in records.items()}},
        dtype=config.dtype, steps_per_epoch=steps_per_epoch,
        loss_tolerance=agreement.LOCKSTEP_LOSS_FLOAT64 if config.dtype == "float64" else None,
        title=title)]
    # The first parameter tensor of each: for a network whose first layer sees whole images, one image per neuron.
    weights = {learner.name: next(iter(learner.named_parameters().values())) for learner in learners}
    if next(iter(weights.values())).dim() == 2 and next(iter(weights.values())).shape[1] == 28 * 28:
        paths.append(first_layer_weights(folder, weights))
    paths.append(confusion_matrices(folder, confusions, data.classes))
    images = (data.x_test.detach().cpu().double() * data.std + data.mean).clamp(0, 1).reshape(-1, 28, 28)
    paths.append(misclassified(folder, images, data.y_test, {n: r.predictions for n, r in records.items()},
                               data.classes))
    return paths
