"""A drawing or a photo of a digit, made into an MNIST input the way MNIST's own digits were made.

    >>> from compare.data.digits import mnist_style
    >>> x = mnist_style(ink)        # ink: [H, W], 0 = paper, 1 = full ink, any size  ->  [28, 28] in 0..1

LeCun, Cortes and Burges describe how they made MNIST from NIST's black-and-white digits: each was
size-normalized to fit a 20x20 box keeping its aspect ratio (the anti-aliasing of that resize gives
the grey levels), then placed in a 28x28 image so that its centre of mass lies at the centre.
`mnist_style` does the same to anything drawn on a canvas or photographed on paper; without it a
digit drawn small in a corner of the canvas is not a digit the networks have ever seen.
"""

from __future__ import annotations

import torch
from torch import Tensor
from torch.nn.functional import interpolate  # compare/ is not scratch/: it may use torch.nn

SIZE = 28  # MNIST's images are 28x28
BOX = 20  # the digit is scaled to fit a 20x20 box
INK_THRESHOLD = 0.1  # a pixel with less ink than this is paper when finding the digit's bounding box


class EmptyDrawingError(ValueError):
    """The image holds no ink (an empty canvas, a blank page)."""


def ink_from_grey(grey: Tensor) -> Tensor:
    """Grey levels 0..255 ([H, W], any dtype) -> ink 0..1, whichever way round the picture is.

    A canvas drawing is light strokes on black (as MNIST), a photo of paper dark strokes on white: the
    border, mostly paper, says which, and a light border is inverted."""
    g = grey.to(torch.float64) / 255  # H,W
    border = torch.cat([g[0], g[-1], g[:, 0], g[:, -1]])
    return 1 - g if border.median() > 0.5 else g


def mnist_style(ink: Tensor) -> Tensor:
    """[H, W] ink in 0..1 -> [28, 28] float64 in 0..1: cropped, fitted into 20x20, centred by mass.

    Raises EmptyDrawingError when no pixel reaches INK_THRESHOLD."""
    if ink.ndim != 2:
        raise ValueError(f"expected one grey image [H, W], got shape {tuple(ink.shape)}")
    ink = ink.to(torch.float64).clamp(0, 1)  # H,W
    rows = torch.nonzero((ink >= INK_THRESHOLD).any(dim=1)).flatten()
    cols = torch.nonzero((ink >= INK_THRESHOLD).any(dim=0)).flatten()
    if len(rows) == 0:
        raise EmptyDrawingError("the image holds no digit: every pixel is blank (draw or upload a digit)")
    crop = ink[rows[0]:rows[-1] + 1, cols[0]:cols[-1] + 1]  # h,w: the bounding box of the ink
    h, w = crop.shape
    scale = BOX / max(h, w)  # the longer side becomes 20, the aspect ratio is kept
    new_h, new_w = max(1, round(h * scale)), max(1, round(w * scale))
    # antialias=True averages the source pixels under each target pixel: the grey levels of a real scan
    box = interpolate(crop[None, None], size=(new_h, new_w), mode="bilinear", antialias=True,
                     align_corners=False)[0, 0].clamp(0, 1)  # new_h,new_w
    ys = torch.arange(new_h, dtype=torch.float64)
    xs = torch.arange(new_w, dtype=torch.float64)
    mass = box.sum()
    cy, cx = (box.sum(dim=1) @ ys) / mass, (box.sum(dim=0) @ xs) / mass  # the centre of mass in the box
    # MNIST puts the centre of mass at pixel (14, 14): measured, its first 500 test digits average (13.98, 14.01)
    top, left = round(SIZE / 2 - cy.item()), round(SIZE / 2 - cx.item())
    top, left = min(max(top, 0), SIZE - new_h), min(max(left, 0), SIZE - new_w)  # keep all the ink in 28x28
    out = torch.zeros(SIZE, SIZE, dtype=torch.float64)  # 28,28
    out[top:top + new_h, left:left + new_w] = box
    return out
