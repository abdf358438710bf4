"""One layer's backward pass, written by hand, checked against torch's autograd on real MNIST digits.

    python examples/layer_backward.py                  # the first Linear layer of the lesson's network
    python examples/layer_backward.py --images 8

scratch.Linear computes out = x W^T + b, and its backward, given dout = dL/dout, returns
    dx = dout W,   and fills   dweight = dout^T x,   dbias = sum over the batch of dout.
Here torch computes the same three gradients with autograd, through the fake loss L = sum(out * dout)
with a random dout (a plain .sum() would give every output the same gradient and hide errors).
"""

import argparse
import os

import torch

import scratch
from compare.data.mnist import load_dataset


def backward_by_hand(layer, x, dout):
    """The hand-written chain rule: scratch/linear.py's backward."""
    layer.forward(x)
    dx = layer.backward(dout)
    return {"x": dx, "weight": layer.dweight, "bias": layer.dbias}


def backward_by_autograd(layer, x, dout):
    """The same gradients from torch.autograd, on copies of the layer's weights."""
    x = x.clone().requires_grad_()
    weight = layer.weight.clone().requires_grad_()
    bias = layer.bias.clone().requires_grad_()
    out = x @ weight.T + bias  # B,16
    (out * dout).sum().backward()  # the fake loss: dL/dout = dout exactly
    return {"x": x.grad, "weight": weight.grad, "bias": bias.grad}


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--images", type=int, default=32, help="a batch of this many real digits (default: 32)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and of dout (default: 0)")
    parser.add_argument("--data-root", default=os.environ.get("MNIST_DATA_ROOT", "data"),
                        help="folder holding mnist/ (default: $MNIST_DATA_ROOT, else ./data)")
    args = parser.parse_args()

    data = load_dataset("mnist", args.data_root, dtype=torch.float64)  # float64: agreement to ~1e-16
    x = data.x_train[:args.images]  # B,784
    torch.manual_seed(args.seed)
    layer = scratch.Linear(784, 16).to(dtype=torch.float64)
    dout = torch.randn(len(x), 16, dtype=torch.float64)  # B,16: a random upstream gradient

    mine, theirs = backward_by_hand(layer, x, dout), backward_by_autograd(layer, x, dout)
    worst = 0.0
    for name in mine:
        error = ((mine[name] - theirs[name]).abs().max() / theirs[name].abs().max()).item()
        worst = max(worst, error)
        print(f"d{name:7s} shape {str(tuple(mine[name].shape)):10s} max relative error {error:.1e}")
    passed = worst <= 1e-10  # compare/base/agreement.py's AUTOGRAD_FLOAT64
    print(f"{'PASSED' if passed else 'FAILED'}: hand-written backward equals autograd (worst {worst:.1e}, "
          "tolerance 1e-10)")
    raise SystemExit(0 if passed else 1)


if __name__ == "__main__":
    main()
