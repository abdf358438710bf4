"""Learning-rate schedules for the torch twin: `torch.optim.lr_scheduler` (scratch/lr_scheduler.py by hand)."""

from torch.optim.lr_scheduler import CosineAnnealingLR, StepLR

__all__ = ["CosineAnnealingLR", "StepLR"]
