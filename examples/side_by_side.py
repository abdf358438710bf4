"""The lesson's network written by hand (scratch/) and in torch (torch_impl/), trained side by side on MNIST.

    python examples/side_by_side.py                       # 1 epoch on all 60,000 training images
    python examples/side_by_side.py --train-images 2000 --dtype float64

Both start from the same seed with bit-identical weights and see the same batches in the same order. The
only difference is how the gradients are found: the scratch network calls its hand-written backward passes,
the torch network calls loss.backward(). The losses are printed side by side; in float64 they agree to the
last few digits for the whole run. `python -m compare train` does the same with every check and table.
"""

import argparse
import os

import torch
from torch import nn

import scratch
import torch_impl
from compare.data.mnist import load_dataset


def train(models, optimizers, losses, x, y, args, epoch):
    """One epoch: the same random batches for both; returns each side's per-step losses."""
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(args.seed + epoch))
    history = {"scratch": [], "torch": []}
    for step, index in enumerate(order.split(args.batch_size), start=1):
        xb, yb = x[index], y[index]
        # scratch: forward, then the chain rule by hand, layer by layer, back from the loss
        loss_s = losses["scratch"].forward(models["scratch"].forward(xb), yb)
        models["scratch"].backward(losses["scratch"].backward())
        optimizers["scratch"].step()
        # torch: forward, then autograd
        optimizers["torch"].zero_grad()
        loss_t = losses["torch"](models["torch"](xb), yb)
        loss_t.backward()
        optimizers["torch"].step()
        history["scratch"].append(loss_s.item())
        history["torch"].append(loss_t.item())
        if step % args.log_interval == 0:
            print(f"epoch {epoch} step {step:5d}  loss scratch {loss_s.item():.10f}  torch {loss_t.item():.10f}  "
                  f"difference {abs(loss_s.item() - loss_t.item()):.1e}")
    return history


@torch.no_grad()
def test(models, x, y):
    """Test accuracy of each side, and the share of test images on which the two predict the same digit."""
    models["torch"].eval()
    predictions = {"scratch": models["scratch"].forward(x).argmax(1), "torch": models["torch"](x).argmax(1)}
    models["torch"].train()
    for name, predicted in predictions.items():
        print(f"{name:8s} test accuracy {(predicted == y).double().mean().item():.2%}")
    same = (predictions["scratch"] == predictions["torch"]).double().mean().item()
    print(f"identical predictions on {same:.2%} of {len(y)} test images")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--epochs", type=int, default=1, help="passes over the training images (default: 1)")
    parser.add_argument("--batch-size", type=int, default=32, help="images per step (default: 32)")
    parser.add_argument("--lr", type=float, default=0.1, help="learning rate of plain SGD (default: 0.1)")
    parser.add_argument("--train-images", type=int, default=60000, help="training images used (default: 60000)")
    parser.add_argument("--dtype", choices=["float32", "float64"], default="float32", help="(default: float32)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and batches (default: 0)")
    parser.add_argument("--log-interval", type=int, default=200, help="steps between printed losses (default: 200)")
    parser.add_argument("--data-root", default=os.environ.get("MNIST_DATA_ROOT", "data"),
                        help="folder holding mnist/ (default: $MNIST_DATA_ROOT, else ./data)")
    args = parser.parse_args()

    dtype = getattr(torch, args.dtype)
    data = load_dataset("mnist", args.data_root, dtype=dtype)
    x, y = data.x_train[:args.train_images], data.y_train[:args.train_images]

    torch.manual_seed(args.seed)
    scratch_model = scratch.MLP().to(dtype=dtype)  # 784-16-16-10 ReLU, the lesson's network
    torch.manual_seed(args.seed)
    torch_model = torch_impl.MLP().to(dtype=dtype)  # the same draws: bit-identical weights
    same = all(torch.equal(p, q) for p, q in zip(scratch_model.parameters(), torch_model.parameters(), strict=True))
    print(f"initial weights bit-identical: {same}")

    models = {"scratch": scratch_model, "torch": torch_model}
    optimizers = {"scratch": scratch.SGD(scratch_model.parameters(), scratch_model.gradients(), lr=args.lr),
                  "torch": torch.optim.SGD(torch_model.parameters(), lr=args.lr)}
    losses = {"scratch": scratch.CrossEntropyLoss(), "torch": nn.CrossEntropyLoss()}
    for epoch in range(1, args.epochs + 1):
        history = train(models, optimizers, losses, x, y, args, epoch)
        worst = max(abs(a - b) / b for a, b in zip(history["scratch"], history["torch"], strict=True))
        print(f"epoch {epoch}: mean loss scratch {sum(history['scratch']) / len(history['scratch']):.6f}, "
              f"torch {sum(history['torch']) / len(history['torch']):.6f}; largest relative difference of a "
              f"step's loss {worst:.1e}")
        test(models, data.x_test, data.y_test)


if __name__ == "__main__":
    main()
