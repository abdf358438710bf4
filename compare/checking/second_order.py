"""Second order (`check_backward(..., order=2)`, `check --order 2`): the backward itself checked as a function.

torch's gradgradcheck idea. A backward is a function of the inputs x and of the upstream gradient dout:

    vjp(x, dout) = (g_1, ..., g_k),   g_i = J_i(x)^T dout

If it is itself differentiable (an engine function, whose rules run on Values when the pass is recorded, or a
torch.autograd.Function whose backward is built from torch operations), its own backward, the vjp of the vjp,
can be checked exactly as a first backward is: `derived(bound)` makes a target of it, whose inputs are x and
dout and whose output is the vjp's (flattened and joined), so that `check_backward`'s comparisons run on it
unchanged:

- its gradient by the target's own double backward (compare/checking/autodiff.py);
- against torch.autograd differentiating the reference's vjp (create_graph=True), and
- against central finite differences of the target's own vjp: (vjp(x + h e_j, dout) - vjp(x - h e_j, dout)) / 2h,
  dotted with a random ddx, as finite differences of a first backward are of its forward.

The gradient with respect to dout is J ddx (S is linear in dout): a backward that forgets that its upstream
gradient is part of the graph fails there.
"""

from __future__ import annotations

import torch
from torch import Tensor

from compare.checking.autodiff import Differentiable
from compare.checking.targets import Bound

UPSTREAM = "dout"  # the name of the upstream gradient, checked as one more input of the backward


def derived(bound: Bound, differentiable: Differentiable, generator: torch.Generator) -> Bound:
    """The backward of `bound` as a target of its own: inputs (x..., dout), output the vjp, its gradient the vjp's."""
    with torch.no_grad():
        out = bound.run(bound.inputs)
    dout = torch.randn(out.shape, generator=generator, dtype=torch.float64).to(out.dtype)
    shapes = [t.shape for t in bound.inputs]

    def joined(grads: list[Tensor]) -> Tensor:
        return torch.cat([g.reshape(-1) for g in grads]) if grads else torch.zeros(0, dtype=out.dtype)

    def split(flat: Tensor) -> list[Tensor]:
        sizes = [s.numel() for s in shapes]
        return [part.reshape(s) for part, s in zip(flat.split(sizes), shapes, strict=True)]

    def run(ins: list[Tensor]) -> Tensor:
        with torch.enable_grad():  # a torch target's own backward is torch.autograd, also inside the checker's no_grad
            return joined([g.detach() for g in bound.own(ins[:-1], ins[-1])[1]])

    def own(ins: list[Tensor], ddx: Tensor) -> tuple[Tensor, list[Tensor], dict[str, Tensor]]:
        return run(ins), differentiable.double_backward(ins[:-1], ins[-1], split(ddx)), {}

    def reference(ins: list[Tensor]) -> tuple[Tensor, dict[str, Tensor]]:
        ref_out, _ = bound.reference(ins[:-1])
        grads = torch.autograd.grad(ref_out, ins[:-1], ins[-1], create_graph=True, allow_unused=True)
        return joined([torch.zeros_like(t) if g is None else g for t, g in zip(ins[:-1], grads, strict=True)]), {}

    return Bound([*bound.input_names, UPSTREAM], [*bound.inputs, dout], {}, run, own,
                 reference if bound.reference is not None else None)
