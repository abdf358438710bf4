"""Writes the lesson's notebooks (docs/notebooks/*.ipynb) from the cells below, without outputs.

    python docs/notebooks/build.py        # after editing a cell here; commit the .ipynb files it writes

The notebooks walk the lesson in order: the neuron -> a layer -> the lesson's network by hand ->
backpropagation by hand, each gradient checked against autograd -> the autograd engine -> scratch and torch
trained side by side. They read a small slice of the real MNIST through $MNIST_DATA_ROOT (as the
commands do), so each runs in seconds; tests/test_notebooks.py executes every one top to bottom.
"""

from __future__ import annotations

from pathlib import Path

import nbformat
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent

LOAD_MNIST = """\
import os

import torch

from compare.data import load_dataset

# the folder holding mnist/ (set MNIST_DATA_ROOT, or pass data_root); float64, so results agree to rounding
data = load_dataset("mnist", os.environ.get("MNIST_DATA_ROOT"), dtype=torch.float64)
x, y = data.x_train[:64], data.y_train[:64]   # a small slice of the real training set: 64 digits
x.shape, y[:10]"""

NOTEBOOKS: dict[str, list[tuple[str, str]]] = {
    "01_neuron_and_layer.ipynb": [
        ("md", """\
# 1. The neuron, then a layer

A neuron (*neurônio*) multiplies each input by a weight (*pesos*), sums, adds a bias (*viés*), and passes the
total through an activation function (*função de ativação*). The lesson's example: inputs 2 and 5, weights 3
and 6, bias -2."""),
        ("code", """\
import torch

x = torch.tensor([2.0, 5.0])
w = torch.tensor([3.0, 6.0])
b = -2.0
z = (x * w).sum() + b      # 2*3 + 5*6 - 2
z"""),
        ("code", "assert z.item() == 34.0\ntorch.relu(z)   # ReLU: max(0, z); a positive sum passes through"),
        ("md", """\
The same neuron as the project's hand-written layer, `scratch.Linear`: one row of its weight matrix is one
neuron. `forward` computes `out = x W^T + b` for a whole batch at once."""),
        ("code", """\
from scratch import Linear

neuron = Linear(2, 1)
neuron.weight.copy_(torch.tensor([[3.0, 6.0]]))   # 1,2: one neuron, two inputs
neuron.bias.copy_(torch.tensor([-2.0]))
neuron.forward(torch.tensor([[2.0, 5.0]]))        # 1,1"""),
        ("md", """\
A layer is many neurons reading the same inputs: a fully connected layer (*camada totalmente conectada*). Its
weights are a matrix `[out, in]`, one row per neuron, and the whole layer is one matrix product."""),
        ("code", """\
torch.manual_seed(0)
layer = Linear(784, 16)              # the lesson's first hidden layer: 784 inputs, 16 neurons
image = torch.rand(1, 784)           # a stand-in for one flattened 28x28 digit
by_matrix = layer.forward(image)     # 1,16
by_neurons = torch.stack([image[0] @ layer.weight[k] + layer.bias[k] for k in range(16)])
assert torch.allclose(by_matrix[0], by_neurons)
by_matrix.shape"""),
    ],
    "02_network_by_hand.ipynb": [
        ("md", """\
# 2. The lesson's network, by hand

784 input neurons (a 28x28 digit flattened row by row: the input layer, *camada de entrada*), two hidden
layers of 16 ReLU neurons (*camadas ocultas*), 10 output neurons, one per digit (*camada de saída*). Here it
is written out with plain tensor operations, then checked against `scratch.MLP` and its torch twin, all three
from the same seed."""),
        ("code", LOAD_MNIST),
        ("code", """\
import torch_impl
from scratch import MLP

torch.manual_seed(0)
net = MLP().to(dtype=torch.float64)                      # 784-16-16-10 ReLU, the lesson's network
torch.manual_seed(0)
twin = torch_impl.MLP().to(dtype=torch.float64)          # the same, as a torch.nn.Module
W1, b1 = net.layers[0].weight, net.layers[0].bias        # 16,784 and 16
W2, b2 = net.layers[2].weight, net.layers[2].bias        # 16,16
W3, b3 = net.layers[4].weight, net.layers[4].bias        # 10,16"""),
        ("md", "Forward propagation (*propagação*), one line per layer:"),
        ("code", """\
h1 = (x @ W1.T + b1).clamp(min=0)     # 64,16  first hidden layer, ReLU
h2 = (h1 @ W2.T + b2).clamp(min=0)    # 64,16  second hidden layer
logits = h2 @ W3.T + b3               # 64,10  one score per digit
probabilities = logits.softmax(dim=1)
logits.shape, probabilities[0]"""),
        ("code", """\
# equal up to rounding: the layers add the bias inside the product (addmm), in another order than here
assert (logits - net.forward(x)).abs().max() < 1e-12                    # the hand-written layers
assert (logits - twin(x)).abs().max() < 1e-12                           # torch
print("untrained accuracy:", (logits.argmax(1) == y).double().mean().item(), "(about 1 in 10)")"""),
        ("md", """\
The loss function (*função de perda*): cross-entropy, the mean of `-log p[true class]`. Untrained, every
class is about equally likely, so the loss is near ln 10 = 2.303."""),
        ("code", """\
loss = -probabilities[torch.arange(len(y)), y].log().mean()
loss.item()"""),
    ],
    "03_backprop_by_hand.ipynb": [
        ("md", """\
# 3. Backpropagation by hand, checked against autograd

Backpropagation (*retropropagação*) is the chain rule applied from the loss back to every weight. We write
each gradient out by hand, then let `torch.autograd` compute the same ones and compare them one by one with
`cmp`, as Andrej Karpathy's makemore lesson does: `exact` when bit-identical, `approximate` when within
rounding, and the largest difference."""),
        ("code", LOAD_MNIST),
        ("code", """\
def cmp(name, mine, autograd):
    exact = torch.equal(mine, autograd)
    approximate = torch.allclose(mine, autograd, rtol=0, atol=1e-12)
    print(f"{name:8s} exact: {str(exact):5s} approximate: {str(approximate):5s} "
          f"max diff: {(mine - autograd).abs().max().item():.1e}")
    assert approximate, name"""),
        ("code", """\
torch.manual_seed(0)
W1 = (torch.randn(16, 784, dtype=torch.float64) * 784 ** -0.5).requires_grad_()
b1 = torch.zeros(16, dtype=torch.float64, requires_grad=True)
W2 = (torch.randn(10, 16, dtype=torch.float64) * 16 ** -0.5).requires_grad_()
b2 = torch.zeros(10, dtype=torch.float64, requires_grad=True)
B = len(x)

# forward, keeping every intermediate so that autograd can give us its gradient too
z1 = x @ W1.T + b1                        # B,16  pre-activation
h1 = z1.clamp(min=0)                      # B,16  ReLU
logits = h1 @ W2.T + b2                   # B,10
logp = logits.log_softmax(dim=1)          # B,10
loss = -logp[torch.arange(B), y].mean()
for t in (z1, h1, logits, logp):
    t.retain_grad()
loss.backward()
loss.item()"""),
        ("md", "Now backwards, by hand, one line per step of the forward pass:"),
        ("code", """\
with torch.no_grad():
    onehot = torch.zeros_like(logits)
    onehot[torch.arange(B), y] = 1                        # B,10: 1 at the true class
    dlogits = (logits.softmax(1) - onehot) / B            # softmax cross-entropy: (p - onehot)/B
    dweight2 = dlogits.T @ h1                             # 10,16
    db2 = dlogits.sum(0)                                  # 10
    dh1 = dlogits @ W2                                    # B,16
    dz1 = dh1 * (z1 > 0)                                  # ReLU lets the gradient through where z1 > 0
    dweight1 = dz1.T @ x                                  # 16,784
    db1 = dz1.sum(0)                                      # 16

cmp("logits", dlogits, logits.grad)
cmp("W2", dweight2, W2.grad)
cmp("b2", db2, b2.grad)
cmp("h1", dh1, h1.grad)
cmp("z1", dz1, z1.grad)
cmp("W1", dweight1, W1.grad)
cmp("b1", db1, b1.grad)"""),
        ("md", """\
`scratch/` holds exactly these formulas, one layer per file (`scratch/linear.py`: `dx = dout W`,
`dW = dout^T x`, `db = sum dout`), and `tests/` checks each against autograd and finite differences."""),
        ("code", """\
from scratch import Linear

layer = Linear(784, 16).to(dtype=torch.float64)
layer.weight.copy_(W1.detach())
layer.bias.copy_(b1.detach())
layer.forward(x)
dx = layer.backward(dz1)
cmp("W1", layer.dweight, W1.grad)
cmp("b1", layer.dbias, b1.grad)"""),
    ],
    "04_engine.ipynb": [
        ("md", """\
# 4. The engine: backpropagation made automatic

`scratch/engine.py` records every operation on a `Value` and replays the chain rule backwards, as
`torch.autograd` does. First the lesson's neuron, then a whole network on real digits: its gradients equal the
hand-derived ones."""),
        ("code", """\
import torch

from scratch.engine import Value

x = Value(torch.tensor([[2.0, 5.0]]), name="x")
w = Value(torch.tensor([[3.0, 6.0]]), requires_grad=True, name="w")
b = Value(torch.tensor([-2.0]), requires_grad=True, name="b")
a = (x @ w.T + b).relu()      # 34
a.backward()
a.data, w.grad, b.grad        # da/dw = x, da/db = 1"""),
        ("code", LOAD_MNIST),
        ("code", """\
import scratch.engine_nn
from scratch import MLP, CrossEntropyLoss
from scratch.engine import cross_entropy

torch.manual_seed(0)
hand = MLP().to(dtype=torch.float64)
torch.manual_seed(0)
auto = scratch.engine_nn.MLP().to(dtype=torch.float64)

loss_fn = CrossEntropyLoss()
hand_loss = loss_fn.forward(hand.forward(x), y)
hand.backward(loss_fn.backward())                  # the formulas written by hand

auto_loss = cross_entropy(auto(Value(x)), y)
auto_loss.backward()                               # derived by the engine from the forward pass

print("losses:", hand_loss.item(), auto_loss.item())
hand_grads = dict(hand.named_gradients())
for name, p in auto.named_parameters():
    diff = (hand_grads[name] - p.grad).abs().max().item()
    print(f"{name:16s} max |hand - engine| = {diff:.1e}")
    assert diff < 1e-12"""),
    ],
    "05_side_by_side.ipynb": [
        ("md", """\
# 5. Scratch and torch, trained side by side

One training loop (`compare/loop.py`) feeds the same batches, in the same order, to the hand-written network
and to its torch twin. In float64 the two stay equal to rounding for the whole run. Vocabulary: the batch size
(*tamanho do lote*) is how many images each step averages over; an epoch (*época*) is one pass over the
training set; the learning rate (*taxa de aprendizado*) is the size of each step."""),
        ("code", """\
import os

import torch

from compare.config import Config
from compare.data import load_dataset
from compare.learners import build_pair, parameter_mismatches
from compare.loop import train_lockstep

config = Config(dtype="float64", epochs=2, batch_size=32, lr=0.1)
data = load_dataset("mnist", os.environ.get("MNIST_DATA_ROOT"), dtype=torch.float64)
x_train, y_train = data.x_train[:2000], data.y_train[:2000]       # a slice of the real data: seconds, not minutes
x_test, y_test = data.x_test[:1000], data.y_test[:1000]
scratch_learner, torch_learner = build_pair(config)
print("initial parameters differ in:", parameter_mismatches(scratch_learner, torch_learner) or "nothing")"""),
        ("code", """\
records = train_lockstep([scratch_learner, torch_learner], x_train, y_train, x_test, y_test,
                         epochs=config.epochs, batch_size=config.batch_size, seed=config.seed, progress=False)
s, t = records["scratch"], records["torch"]
for a, b in zip(s.history, t.history, strict=True):
    print(f"epoch {a.epoch}: loss {a.train_loss:.6f} vs {b.train_loss:.6f}, "
          f"test accuracy {a.test_accuracy:.2%} vs {b.test_accuracy:.2%}")"""),
        ("code", """\
worst = max(abs(a - b) / abs(b) for a, b in zip(s.step_losses, t.step_losses, strict=True))
print(f"{len(s.step_losses)} steps, largest relative difference of the per-step losses: {worst:.1e}")
assert worst < 1e-9 and torch.equal(s.predictions, t.predictions)"""),
        ("md", """\
The same, for the full data set and with every check and table: `python -m compare train --dtype float64`.
In float32 the runs agree at the first step and then drift apart by rounding; the README explains why and how
the verdict still judges the implementations."""),
    ],
}


def build() -> list[Path]:
    paths = []
    for name, cells in NOTEBOOKS.items():
        notebook = new_notebook(cells=[new_markdown_cell(text) if kind == "md" else new_code_cell(text)
                                       for kind, text in cells])
        for number, cell in enumerate(notebook.cells):
            cell["id"] = f"cell-{number}"  # fixed ids (nbformat draws random ones): a rebuild changes nothing
        notebook.metadata["kernelspec"] = dict(name="python3", display_name="Python 3", language="python")
        path = HERE / name
        nbformat.write(notebook, path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for path in build():
        print(f"wrote {path}")
