"""Metrics: accuracy, the confusion matrix, and per-class precision, recall (sensitivity) and F1.

- accuracy:    fraction of images whose predicted class is the true class
- precision_c: of the images predicted as c, the fraction that really are c   = TP / (TP + FP)
- recall_c:    of the images that really are c, the fraction predicted as c   = TP / (TP + FN)
               (also called sensitivity)
- F1_c:        the harmonic mean of the two, 2 P R / (P + R)
"""

from __future__ import annotations

import torch
from torch import Tensor


def accuracy(predictions: Tensor, targets: Tensor) -> float:
    return (predictions == targets).double().mean().item()


def confusion_matrix(predictions: Tensor, targets: Tensor, num_classes: int) -> Tensor:
    """[true class, predicted class] counts, int64."""
    flat = targets.cpu() * num_classes + predictions.cpu()
    return torch.bincount(flat, minlength=num_classes * num_classes).reshape(num_classes, num_classes)


def per_class_scores(confusion: Tensor) -> dict[str, list[float]]:
    """Precision, recall and F1 of each class; 0 where a class was never predicted or never present."""
    c = confusion.double()
    tp = c.diag()
    predicted, actual = c.sum(dim=0), c.sum(dim=1)
    precision = torch.where(predicted > 0, tp / predicted.clamp_min(1), torch.zeros_like(tp))
    recall = torch.where(actual > 0, tp / actual.clamp_min(1), torch.zeros_like(tp))
    denom = precision + recall
    f1 = torch.where(denom > 0, 2 * precision * recall / denom.clamp_min(1e-300), torch.zeros_like(tp))
    return {"precision": precision.tolist(), "recall": recall.tolist(), "f1": f1.tolist()}
