"""How far back does a gradient reach through the rows of a digit? |dL/dh_t| of the tanh RNN and the LSTM.

    OMP_NUM_THREADS=1 PYTHONPATH=. python scripts/gradient_reach.py       # the table of docs/recurrence.md

For each layer (hidden size 128, seed 0): `scratch.rnn.hidden_gradient_norms` on 100 MNIST test digits,
at initialization and after one epoch on the first 10,000 training images (a Linear head on h_28,
Adam at lr 2e-3, batch 64, shuffled with the seed), then that classifier's accuracy on the 10,000 test
images. Everything is scratch code: the layers, the loss, the optimizer.
"""

from __future__ import annotations

import argparse

import torch

from compare.data.mnist import load_dataset
from scratch.linear import Linear
from scratch.losses import CrossEntropyLoss
from scratch.module import Module
from scratch.optim import Adam
from scratch.rnn import RNN, hidden_gradient_norms
from scratch.sequence import LSTMClassifier

STEPS_SHOWN = (28, 21, 14, 7, 1)  # t of the columns


class RNNClassifier(LSTMClassifier):
    """LSTMClassifier with the tanh RNN in the LSTM's place: its forward and backward use only what both layers
    have (forward, backward, the states h), so the same head reads h_28."""

    def __init__(self, input_size: int = 28, hidden_size: int = 128, num_classes: int = 10) -> None:
        Module.__init__(self)
        self.input_size = input_size
        self.lstm = RNN(input_size, hidden_size)  # drawn first, as the LSTM is
        self.head = Linear(hidden_size, num_classes)
        self.input_shape = None


def train_one_epoch(model: LSTMClassifier, x, y, lr: float, batch_size: int, seed: int) -> None:
    grads = [g for _, g in model.named_gradients()]  # in named_parameters order
    optimizer = Adam(model.parameters(), grads, lr=lr)
    loss_fn = CrossEntropyLoss()
    order = torch.randperm(len(x), generator=torch.Generator().manual_seed(seed))
    for start in range(0, len(x), batch_size):
        batch = order[start:start + batch_size]
        loss_fn(model.forward(x[batch]), y[batch])
        model.backward(loss_fn.backward(), input_grad=False)
        optimizer.step()


def row(label: str, norms: torch.Tensor, accuracy: float | None = None) -> str:
    cells = " | ".join(f"{norms[t - 1].item():.1e}".replace("e-0", "e-") if t != 28 else
                       f"{norms[t - 1].item():.3g}" for t in STEPS_SHOWN)
    return f"| {label} | {cells} | {'' if accuracy is None else f'{100 * accuracy:.1f}%'} |"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--hidden-size", type=int, default=128, help="hidden units of both layers (default: 128)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights and the batch order (default: 0)")
    args = parser.parse_args()
    data = load_dataset("mnist", download=False)
    digits = data.x_test[:100].reshape(-1, 28, 28)  # B,T,I: 100 test digits, row by row
    x_train, y_train = data.x_train[:10_000], data.y_train[:10_000]
    print("| layer | " + " | ".join(f"t = {t}" for t in STEPS_SHOWN) + " | test accuracy |")
    print("|---|" + "---|" * len(STEPS_SHOWN) + "---|")
    trained = []
    for name, make in (("RNN", RNNClassifier), ("LSTM", LSTMClassifier)):
        torch.manual_seed(args.seed)
        model = make(hidden_size=args.hidden_size)
        print(row(f"{name}, at initialization", hidden_gradient_norms(model.lstm, digits)))
        train_one_epoch(model, x_train, y_train, lr=2e-3, batch_size=64, seed=args.seed)
        accuracy = (model.forward(data.x_test).argmax(dim=1) == data.y_test).double().mean().item()
        trained.append(row(f"{name}, trained", hidden_gradient_norms(model.lstm, digits), accuracy))
    print("\n".join(trained))
    # hidden_gradient_norms puts a unit gradient on h_28, so the first column is 1 by construction.


if __name__ == "__main__":
    main()
