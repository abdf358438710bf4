"""Writes the lesson's notebooks (docs/notebooks/*.ipynb) from the cells below, executed, with their outputs.

    python docs/notebooks/build.py        # after editing a cell here; commit the .ipynb files it writes

The notebooks walk the lesson in order: the neuron -> a layer -> the lesson's network by hand ->
backpropagation by hand, each gradient checked against autograd -> the autograd engine -> scratch and torch
trained side by side -> the engine's modes: forward (jvp) and reverse, and second derivatives (double
backward, hvp, the Hessian), checked against torch.func. They read a small slice of the real MNIST through
$MNIST_DATA_ROOT (as the commands do), so each runs in seconds. Every figure and number in them comes from
running them: the build executes each one (nbclient, kernel python3, cwd the repository root, one thread) and
writes it with its outputs, so a learner sees them on GitHub without running anything. The outputs are
reproducible (fixed seeds, float64, no timing or version metadata, PNGs without a software stamp): a second
build on the same machine changes nothing. tests/test_notebooks.py executes every one and compares it with the
committed file.
"""

from __future__ import annotations

import os
from pathlib import Path

import nbformat
from nbclient import NotebookClient
from nbformat import NotebookNode
from nbformat.v4 import new_code_cell, new_markdown_cell, new_notebook

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent.parent
SECONDS_PER_CELL = 60

# The first code cell of every notebook: inline PNG figures that are the same bytes at every build.
PLOTS = """\
%matplotlib inline
import matplotlib.pyplot as plt

# a PNG carries the matplotlib version unless told not to; without it a rebuild writes the same bytes
%config InlineBackend.print_figure_kwargs = {"bbox_inches": "tight", "metadata": {"Software": None}}
plt.rcParams.update({"figure.dpi": 80, "svg.hashsalt": "lesson", "font.size": 10})"""

LOAD_MNIST = """\
import os

import torch

from compare.data.mnist import load_dataset

# the folder holding mnist/ (set MNIST_DATA_ROOT, or pass data_root); float64, so results agree to rounding
data = load_dataset("mnist", os.environ.get("MNIST_DATA_ROOT"), dtype=torch.float64)
x, y = data.x_train[:64], data.y_train[:64]   # a small slice of the real training set: 64 digits
x.shape, y[:10]"""

NOTEBOOKS: dict[str, list[tuple[str, str]]] = {
    "01_neuron_and_layer.ipynb": [
        ("md", """\
# 1. The neuron, then a layer

Everything in this project is built from one small piece: the neuron (*neurônio*). It takes some numbers in,
multiplies each by its own weight (*pesos*), adds the products, adds one more number called the bias
(*viés*), and passes the total through an activation function (*função de ativação*). That is all. A network
that reads handwritten digits is many of these, arranged in layers, with the weights chosen by training.

We start with the lesson's worked example, small enough to check in your head: inputs 2 and 5, weights 3 and
6, bias −2. Then we see the same neuron inside the project's hand-written layer, and finally a whole layer of
sixteen neurons computed at once.

The first cell only sets up the figures (drawn inline, as PNG images)."""),
        ("code", PLOTS),
        ("code", """\
import torch

x = torch.tensor([2.0, 5.0])     # the inputs
w = torch.tensor([3.0, 6.0])     # one weight per input
b = -2.0                         # the bias
products = x * w                 # 2*3 and 5*6
z = products.sum() + b           # 2*3 + 5*6 - 2
products, z"""),
        ("md", """\
The weighted sum `z` is 34, as on paper. The activation function decides what the neuron passes on. The
lesson uses ReLU, `max(0, z)`: a positive sum passes through unchanged, a negative one becomes 0. Without an
activation, layers stacked on each other would collapse into one big linear map, and the network could only
draw straight lines between classes; the bend at zero is what lets it learn curved boundaries."""),
        ("code", "assert z.item() == 34.0\ntorch.relu(z)   # ReLU: max(0, z); a positive sum passes through"),
        ("md", """\
The picture below shows the same arithmetic. On the left, each bar is one term of the sum: the two products
and the bias, stacked one after the other until they reach the total. On the right is ReLU itself, with our
neuron's sum marked on it. Look at how the bias works: it shifts the total, so it moves the point where the
neuron starts to respond, independently of the inputs."""),
        ("code", """\
terms = [products[0].item(), products[1].item(), b]
labels = ["2·3", "5·6", "bias"]
starts = [0, terms[0], terms[0] + terms[1]]

fig, (left, right) = plt.subplots(1, 2, figsize=(9, 3.2))
left.bar(labels, terms, bottom=starts, color=["tab:blue", "tab:blue", "tab:orange"])
left.bar(["z"], [z.item()], color="tab:green")
for i, (s, t) in enumerate(zip(starts, terms, strict=True)):
    left.text(i, s + t / 2, f"{t:+g}", ha="center", va="center", color="white")
left.text(3, z.item() / 2, f"{z.item():g}", ha="center", va="center", color="white")
left.set_title("the weighted sum, term by term")

grid = torch.linspace(-10, 40, 101)
right.plot(grid, torch.relu(grid), color="tab:gray")
right.plot([z.item()], [torch.relu(z).item()], "o", color="tab:green")
right.annotate(f"relu({z.item():g}) = {torch.relu(z).item():g}", (z.item(), z.item()), (0, 28), ha="center")
right.set_xlabel("z")
right.set_title("ReLU: max(0, z)")
plt.show()"""),
        ("md", """\
The same neuron as the project's hand-written layer, `scratch.Linear`. Its weight matrix has one row per
neuron, so a single neuron with two inputs is a 1×2 matrix. `forward` computes `out = x Wᵀ + b` for a whole
batch of inputs at once; here the batch holds one example."""),
        ("code", """\
from scratch import Linear

neuron = Linear(2, 1)
neuron.weight.copy_(torch.tensor([[3.0, 6.0]]))   # 1,2: one neuron, two inputs
neuron.bias.copy_(torch.tensor([-2.0]))
neuron.forward(torch.tensor([[2.0, 5.0]]))        # 1,1"""),
        ("md", """\
A layer is many neurons reading the same inputs: a fully connected layer (*camadas totalmente conectadas*),
because every input reaches every neuron. Its weights are a matrix `[out, in]`, one row per neuron, and the
whole layer is one matrix product. The cell below checks that claim: the matrix product gives exactly what
sixteen separate neurons, computed one at a time in a loop, give."""),
        ("code", """\
torch.manual_seed(0)
layer = Linear(784, 16)              # the lesson's first hidden layer: 784 inputs, 16 neurons
image = torch.rand(1, 784)           # a stand-in for one flattened 28x28 digit
by_matrix = layer.forward(image)     # 1,16
by_neurons = torch.stack([image[0] @ layer.weight[k] + layer.bias[k] for k in range(16)])
assert torch.allclose(by_matrix[0], by_neurons)
by_matrix.shape"""),
        ("md", """\
What do the sixteen neurons say about this input? The bars show each weighted sum, and then what ReLU
passes on. With random weights roughly half the sums are negative, and ReLU turns those into zeros: those
neurons are silent for this input. Training will change the weights so that each neuron responds to a useful
pattern of pixels."""),
        ("code", """\
fig, ax = plt.subplots(figsize=(9, 2.8))
ks = torch.arange(16)
ax.bar(ks - 0.2, by_matrix[0], width=0.4, label="weighted sum z")
ax.bar(ks + 0.2, torch.relu(by_matrix[0]), width=0.4, label="relu(z)")
ax.axhline(0, color="black", linewidth=0.5)
ax.set_xticks(ks)
ax.set_xlabel("neuron")
ax.legend()
ax.set_title("one layer of 16 neurons on one input")
plt.show()"""),
        ("md", """\
Next: the lesson's whole network, three such layers one after another, run on real handwritten digits."""),
    ],
    "02_network_by_hand.ipynb": [
        ("md", """\
# 2. The lesson's network, by hand

The lesson's network reads a 28×28 grey image of a handwritten digit and says which digit it is. Its
784 input neurons are the image's pixels, flattened row by row: that is the input layer (*camada de entrada*).
Two hidden layers (*camada oculta*) of 16 ReLU neurons each follow, and then 10 output neurons, one per
digit: the output layer (*camada de saída*). We write it out here with nothing but tensor operations, then
check it against the project's hand-written `scratch.MLP` and its PyTorch twin `torch_impl.MLP`, all three
built from the same random seed so that they hold the same weights.

We use float64 throughout: in double precision two correct computations agree to about 1e-16 relative, so any
real mistake stands out far above rounding."""),
        ("code", PLOTS),
        ("code", LOAD_MNIST),
        ("md", """\
These are the first digits of the training set, as the network sees them: 784 numbers each, shown here folded
back into 28×28 squares (the values were normalized, so the grey scale is relative). The title above each
is its label, the answer the network should learn to give."""),
        ("code", """\
fig, axes = plt.subplots(1, 8, figsize=(9, 1.6))
for ax, image, label in zip(axes, x, y, strict=False):
    ax.imshow(image.reshape(28, 28), cmap="gray_r")
    ax.set_title(f"label {label.item()}")
    ax.axis("off")
plt.show()"""),
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
        ("md", """\
Forward propagation (*propagação*) means computing the output from the input, one layer after another, each
layer reading the previous one's output. For a batch of 64 images it is one line per layer. Read the shape
comments: the batch dimension stays 64 all the way, and the other shrinks 784 → 16 → 16 → 10. Softmax then
turns the ten scores (the logits) into probabilities that are positive and sum to 1."""),
        ("code", """\
h1 = (x @ W1.T + b1).clamp(min=0)     # 64,16  first hidden layer, ReLU
h2 = (h1 @ W2.T + b2).clamp(min=0)    # 64,16  second hidden layer
logits = h2 @ W3.T + b3               # 64,10  one score per digit
probabilities = logits.softmax(dim=1)
logits.shape, probabilities[0]"""),
        ("md", """\
Now the check: the three lines above, the hand-written layers of `scratch/` and torch's `nn.Linear` must give
the same logits. They are not bit-identical, because the layers add the bias inside the product (torch's
`addmm`), in another order than our line does, and floating-point addition depends on the order. So the
assertion allows a difference far below anything a bug would cause. The accuracy printed below is that of a
network that has learned nothing yet: it guesses."""),
        ("code", """\
assert (logits - net.forward(x)).abs().max() < 1e-12                    # the hand-written layers
assert (logits - twin(x)).abs().max() < 1e-12                           # torch
print(f"untrained accuracy: {(logits.argmax(1) == y).double().mean().item():.3f} (chance is 1 in 10)")"""),
        ("md", """\
The loss function (*função de perda*) measures how wrong the network is with one number that training will
push down. The lesson's choice is cross-entropy: the mean over the batch of `-log p[true class]`. It is 0
when the network puts all its probability on the right digit, and large when it puts almost none there.
Untrained, every class is about equally likely, so each `p[true class]` is near 1/10 and the loss is near
ln 10 ≈ 2.303."""),
        ("code", """\
loss = -probabilities[torch.arange(len(y)), y].log().mean()
print(f"loss {loss.item():.4f}, ln 10 = {torch.log(torch.tensor(10.0)).item():.4f}")"""),
        ("md", """\
The figure shows the same thing for the first sixteen images: each row is one image's ten probabilities, and
the dot marks its true digit. The colours are nearly flat because small random weights give nearly equal
scores. Training (notebook 5) will make one cell per row bright, on the dot."""),
        ("code", """\
fig, ax = plt.subplots(figsize=(5, 4.5))
shown = ax.imshow(probabilities[:16].detach(), cmap="viridis", vmin=0, vmax=0.2)
ax.plot(y[:16], torch.arange(16), "o", color="white", markersize=4)
ax.set_xticks(range(10))
ax.set_xlabel("digit")
ax.set_ylabel("image")
ax.set_title("untrained probabilities (dot: the true digit)")
fig.colorbar(shown, ax=ax)
plt.show()"""),
    ],
    "03_backprop_by_hand.ipynb": [
        ("md", """\
# 3. Backpropagation by hand, checked against autograd

Training needs the gradient of the loss with respect to every weight: how much the loss would change if
that weight moved a little. Backpropagation (*retropropagação*) computes all of them in one sweep, applying
the chain rule from the loss back towards the input. Each step of the forward pass has a matching backward
step that turns the gradient of its output into the gradient of its inputs and weights.

Here we write every backward step out by hand for a network with one hidden layer, then let
`torch.autograd` compute the same gradients and compare them one by one with `cmp`, the helper from Andrej
Karpathy's makemore lesson. It prints `exact` when the two are bit-identical, `approximate` when they agree
within rounding, and the largest difference."""),
        ("code", PLOTS),
        ("code", LOAD_MNIST),
        ("code", """\
def cmp(name, mine, autograd):
    exact = torch.equal(mine, autograd)
    approximate = torch.allclose(mine, autograd, rtol=0, atol=1e-12)
    print(f"{name:8s} exact: {str(exact):5s} approximate: {str(approximate):5s} "
          f"max diff: {(mine - autograd).abs().max().item():.1e}")
    assert approximate, name"""),
        ("md", """\
The forward pass keeps every intermediate tensor, and `retain_grad()` asks autograd to keep its gradient
too, so that we can compare not only the weights' gradients but every step in between. If a hand-written
step were wrong, the first line of `cmp` that fails would point at it."""),
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
print(f"loss {loss.item():.4f}")"""),
        ("md", """\
Now backwards, by hand, one line per step of the forward pass, last step first. Softmax followed by
cross-entropy has a famously simple gradient, `(p - onehot) / B`: the predicted probabilities minus the
right answer, averaged over the batch. A linear layer `out = h Wᵀ + b` sends the gradient back in three ways:
to its weights (`doutᵀ h`), to its bias (the sum over the batch) and to its input (`dout W`). ReLU lets the
gradient through where its input was positive and blocks it elsewhere, because its slope is 1 there and 0
below zero."""),
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
What to look for above: every line says `approximate: True`, and the max differences are zero or at the
level of float64 rounding (around 1e-16 relative to the numbers compared, so even smaller for these small
gradients). `exact` may well say False: autograd computes the same formulas but may add the same numbers in
another order, and floating-point addition rounds differently in each order.

A gradient of the first layer's weights has the shape of the input, so one neuron's row of `dW1` can be
folded back into a 28×28 image: it shows which pixels would raise or lower the loss through that neuron. The
figure draws it both ways and their difference, on its own colour scale."""),
        ("code", """\
k = 0                                                     # one neuron of the hidden layer
by_hand, by_autograd = dweight1[k].reshape(28, 28), W1.grad[k].reshape(28, 28)
difference = by_hand - by_autograd
limit = by_autograd.abs().max().item()

fig, axes = plt.subplots(1, 3, figsize=(9, 3))
for ax, image, title in zip(axes[:2], [by_hand, by_autograd], ["by hand", "autograd"], strict=True):
    ax.imshow(image, cmap="RdBu", vmin=-limit, vmax=limit)
    ax.set_title(f"dW1[{k}] {title}")
shown = axes[2].imshow(difference, cmap="RdBu", vmin=-difference.abs().max(), vmax=difference.abs().max())
axes[2].set_title(f"difference\\nmax {difference.abs().max().item():.1e}")
fig.colorbar(shown, ax=axes[2])
for ax in axes:
    ax.axis("off")
plt.show()"""),
        ("md", """\
`scratch/` holds exactly these formulas, one layer per file (`scratch/linear.py`: `dx = dout W`,
`dW = doutᵀ x`, `db = sum dout`), and `tests/` checks each against autograd and finite differences. The
project's `Linear` layer, given our weights and the gradient `dz1` from above, must produce the same weight
and bias gradients:"""),
        ("code", """\
from scratch import Linear

layer = Linear(784, 16).to(dtype=torch.float64)
layer.weight.copy_(W1.detach())
layer.bias.copy_(b1.detach())
layer.forward(x)
dx = layer.backward(dz1)
cmp("W1", layer.dweight, W1.grad)
cmp("b1", layer.dbias, b1.grad)"""),
        ("md", """\
Writing each backward by hand is the way to understand it, and tedious for every new network. The next
notebook lets a small engine derive them from the forward pass."""),
    ],
    "04_engine.ipynb": [
        ("md", """\
# 4. The engine: backpropagation made automatic

In notebook 3 we wrote one backward line for every forward line. That is mechanical, so a program can do
it. `scratch/engine.py` is such a program, a small autograd engine in the spirit of micrograd: each
operation on a `Value` records its inputs and a function that computes their gradients, and `backward()`
walks the recorded graph from the result back to the leaves, applying the chain rule at each node, exactly
as `torch.autograd` does.

First the lesson's neuron once more, this time as a `Value` expression, with its computation graph printed
and drawn. Then a whole network on real digits: the engine's gradients must equal the hand-derived ones of
`scratch.MLP`."""),
        ("code", PLOTS),
        ("code", """\
import torch

from scratch.engine import Value

x = Value(torch.tensor([[2.0, 5.0]]), name="x")
w = Value(torch.tensor([[3.0, 6.0]]), requires_grad=True, name="w")
b = Value(torch.tensor([-2.0]), requires_grad=True, name="b")
a = (x @ w.T + b).relu()      # 34
a.backward()
a.data, w.grad, b.grad        # da/dw = x, da/db = 1"""),
        ("md", """\
The gradients are what the chain rule says: `a = relu(x·w + b)` and the sum is positive, so ReLU's slope is
1, the gradient with respect to each weight is the input it multiplies (2 and 5), and with respect to the
bias it is 1.

`compare/pictures/graph.py` lists the graph the engine recorded, one node per row, each after the nodes it was
computed from. Leaves are either data (`x`, a constant: no gradient) or parameters (`w` and `b`, which need
one); `|grad|` is the norm of the gradient that arrived at each node during `backward()`."""),
        ("code", """\
from compare.pictures.graph import describe, grad_norm, graph_nodes, graph_text, shape_text

print(graph_text(a))"""),
        ("md", """\
The same graph drawn: data flows left to right from the leaves to the result, and `backward()` visits the
nodes right to left. The drawing code only places boxes by their depth in the graph; you can skip it."""),
        ("code", """\
def draw_graph(root, ax):
    nodes = graph_nodes(root)
    depth = {}
    for node in nodes:                                # parents come first, so their depth is known
        depth[node] = 1 + max((depth[p] for p in node._parents), default=-1)
    rows = {}
    place = {}
    for node in nodes:
        place[node] = (depth[node], -rows.setdefault(depth[node], 0))
        rows[depth[node]] += 1
    for node in nodes:
        for parent in node._parents:
            ax.annotate("", place[node], place[parent],
                        arrowprops=dict(arrowstyle="->", color="gray", shrinkA=22, shrinkB=22))
    for node in nodes:
        norm = grad_norm(node)
        color = "#ffd8a8" if node is root else ("#cfe2ff" if node.requires_grad else "#e9ecef")
        label = f"{describe(node)}\\n{shape_text(node)}" + ("" if norm is None else f"\\n|grad| {norm:.3g}")
        ax.text(*place[node], label, ha="center", va="center", fontsize=8,
                bbox=dict(boxstyle="round", facecolor=color, edgecolor="gray"))
    ax.set_xlim(-0.6, max(depth.values()) + 0.6)
    ax.set_ylim(-max(rows.values()) + 0.4, 0.6)
    ax.axis("off")


fig, ax = plt.subplots(figsize=(9, 2.6))
draw_graph(a, ax)
ax.set_title("a = relu(x @ w.T + b): grey data, blue parameters, orange the result")
plt.show()"""),
        ("md", """\
Now a whole network: the lesson's 784-16-16-10, once with the hand-written backward of `scratch.MLP` and
once as engine `Value`s (`scratch/engine_nn.py`), both from the same seed, on 64 real digits. The losses must
be equal, and every parameter's gradient must agree to rounding."""),
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

print(f"losses: {hand_loss.item():.6f} (by hand) {auto_loss.item():.6f} (engine)")
hand_grads = dict(hand.named_gradients())
for name, p in auto.named_parameters():
    diff = (hand_grads[name] - p.grad).abs().max().item()
    print(f"{name:16s} max |hand - engine| = {diff:.1e}")
    assert diff < 1e-12"""),
        ("md", """\
Every max difference above is zero or at rounding level. The network's graph is longer but has the same
shape as the neuron's: for each layer a transpose, a matmul, an add and a ReLU, then log-softmax and the
loss. Its table:"""),
        ("code", "print(graph_text(auto_loss))"),
        ("md", """\
The gradient norms per node tell a story of their own. The loss node starts `backward()` with gradient 1;
each node's gradient is computed from the ones after it. Follow the `add` and `relu` nodes from the bottom of
the figure to the top, layer by layer: that is how the gradient's size changes as it travels back towards the
input. In a deep network it can shrink (vanish) or grow (explode) a little at every layer, which is why the
initial weights are scaled with care; the parameters' own gradients (blue) are what the optimizer uses."""),
        ("code", """\
numbered = [(i, n) for i, n in enumerate(graph_nodes(auto_loss)) if grad_norm(n) is not None]
nodes = [n for _, n in numbered]
labels = [f"#{i} {describe(n)}" for i, n in numbered]           # the numbers of the table above
fig, ax = plt.subplots(figsize=(7, 5))
ax.barh(range(len(nodes)), [grad_norm(n) for n in nodes],
        color=["#cfe2ff" if not n._parents else "tab:gray" for n in nodes], edgecolor="gray")
ax.set_yticks(range(len(nodes)), labels, fontsize=8)
ax.invert_yaxis()
ax.set_xscale("log")
ax.set_xlabel("|grad| (log scale)")
ax.set_title("gradient norm at each node (blue: parameters), input side at the top")
plt.show()"""),
    ],
    "05_side_by_side.ipynb": [
        ("md", """\
# 5. Scratch and torch, trained side by side

Training is optimization (*otimização*): after each batch, move every weight a small step against its
gradient, so that the loss goes down. The size of that step is the learning rate (*taxa de aprendizado*).
The batch size (*tamanho do lote*) is how many images each step averages its gradient over, and an epoch
(*épocas*) is one pass over the training set.

Here one training loop (`compare/training/loop.py`) feeds the same batches, in the same order, to the hand-written
network and to its PyTorch twin, in lockstep: both take step 1, then both take step 2, and so on. Only the
model and the optimizer differ; the loop, the data and the evaluation are shared, so a difference in the
results can only come from the two implementations. In float64 the two must stay equal to rounding for the
whole run. We train on a slice of the real training set so that it takes seconds."""),
        ("code", PLOTS),
        ("code", """\
import os

import torch

from compare.data.mnist import load_dataset
from compare.training.config import Config
from compare.training.learners import build_pair, parameter_mismatches
from compare.training.loop import train_lockstep

config = Config(dtype="float64", epochs=2, batch_size=32, lr=0.1)
data = load_dataset("mnist", os.environ.get("MNIST_DATA_ROOT"), dtype=torch.float64)
x_train, y_train = data.x_train[:2000], data.y_train[:2000]       # a slice of the real data: seconds, not minutes
x_test, y_test = data.x_test[:1000], data.y_test[:1000]
scratch_learner, torch_learner = build_pair(config)
print("initial parameters differ in:", parameter_mismatches(scratch_learner, torch_learner) or "nothing")"""),
        ("md", """\
Both learners are built from one seed, and the line above confirms that they start bit-identical. If they
did not, nothing after this would be a fair comparison. Now train, and print each epoch's mean loss and
accuracy on the test slice, scratch on the left and torch on the right:"""),
        ("code", """\
records = train_lockstep([scratch_learner, torch_learner], x_train, y_train, x_test, y_test,
                         epochs=config.epochs, batch_size=config.batch_size, seed=config.seed, progress=False)
s, t = records["scratch"], records["torch"]
for a, b in zip(s.history, t.history, strict=True):
    print(f"epoch {a.epoch}: loss {a.train_loss:.6f} vs {b.train_loss:.6f}, "
          f"test accuracy {a.test_accuracy:.2%} vs {b.test_accuracy:.2%}")"""),
        ("md", """\
The two columns are the same to every printed digit. The next cell looks closer, at the loss of every single
step, and at the test predictions: it asserts that the largest relative difference between the two runs'
step losses is far below anything a real difference in the math would cause, and that both networks predict
the same digit for every test image."""),
        ("code", """\
worst = max(abs(a - b) / abs(b) for a, b in zip(s.step_losses, t.step_losses, strict=True))
print(f"{len(s.step_losses)} steps; relative difference of the step losses below 1e-9: {worst < 1e-9}")
assert worst < 1e-9 and torch.equal(s.predictions, t.predictions)"""),
        ("md", """\
The curves below are those step losses. On the left the two runs are drawn on top of each other: you see
one curve, because they coincide. On the right is their difference, on a log scale, next to the size of one
float64 rounding step at that loss (the loss times 2⁻⁵², the grey line). Where the two are bit-identical the
difference is zero and has no place on a log scale, so that step has no dot; the title counts them. What
remains sits at the grey line: the two implementations differ only by rounding."""),
        ("code", """\
import numpy as np

steps = np.arange(1, len(s.step_losses) + 1)
ours, theirs = np.array(s.step_losses), np.array(t.step_losses)
difference = np.abs(ours - theirs)
identical = int((difference == 0).sum())

fig, (left, right) = plt.subplots(1, 2, figsize=(10, 3.4))
left.plot(steps, ours, label="scratch", linewidth=3, alpha=0.5)
left.plot(steps, theirs, label="torch", linewidth=1)
left.set_xlabel("step")
left.set_ylabel("loss")
left.legend()
left.set_title("per-step training loss")
right.semilogy(steps, np.where(difference > 0, difference, np.nan), "o", markersize=3, label="|scratch - torch|")
right.semilogy(steps, theirs * 2.0 ** -52, color="gray", label="one rounding step")
right.set_xlabel("step")
right.legend()
right.set_title(f"their difference ({identical} of {len(steps)} steps bit-identical)")
plt.show()"""),
        ("md", """\
The same run on the full data set, with every check and table: `python -m compare train --dtype float64`.
In float32 the runs agree at the first step and then drift apart by rounding, because each step's tiny
differences change the next step's weights; the README explains why, and how the verdict still judges the
implementations."""),
    ],
    "06_autograd_modes.ipynb": [
        ("md", """\
# 6. Autograd modes: forward, reverse, and a derivative of a derivative

Notebook 4's engine ran backpropagation (*retropropagação*): one pass from the loss back to every weight. That
is reverse mode. Forward mode goes the other way: it pushes a small change of the inputs forward, along with
propagation (*propagação*) itself, and tells how every output moves. Both give the same derivatives, cut
differently: forward mode a column of the Jacobian, reverse mode a row. One on top of the other gives second
derivatives, the curvature behind Newton's method and the sharpness of a network.

All of it on the lesson's neuron once more: inputs 2 and 5, weights (*pesos*) 3 and 6, bias (*viés*) −2, a
ReLU, and half the squared distance to a target of 40."""),
        ("code", PLOTS),
        ("md", """\
Forward mode by hand. Give every number a second number, its tangent: how fast it moves when the weight `w1`
moves at speed 1. Inputs and the other parameters do not move (tangent 0). Each operation then computes its
tangent beside its value, with the rule of ordinary calculus: a product's is `x1·tw1 + x2·tw2`, ReLU passes it
where `z > 0`, and the square's is `(a − 40)·ta`."""),
        ("code", """\
x1, x2, w1, w2, b = 2.0, 5.0, 3.0, 6.0, -2.0
tw1, tw2, tb = 1.0, 0.0, 0.0                            # the direction: move w1 only

z, tz = x1 * w1 + x2 * w2 + b, x1 * tw1 + x2 * tw2 + tb    # 34, and 2
a, ta = max(z, 0.0), tz * (z > 0)                          # 34, and 2
loss, tloss = 0.5 * (a - 40) ** 2, (a - 40) * ta           # 18, and -12
z, tz, a, ta, loss, tloss"""),
        ("md", """\
The last tangent, −12, is dloss/dw1, found in the same single pass that computed the loss. The engine does the
same with `jvp` (a Jacobian-vector product, named as in `torch.func`): every op of `scratch/engine.py` has a
tangent rule beside its backward rule."""),
        ("code", """\
import torch

from scratch.engine import Value, cat, grad, hessian, hvp, jacfwd, jacrev, jvp

f64 = torch.float64
x = torch.tensor([[2.0, 5.0]], dtype=f64)      # 1,2  the input
w = torch.tensor([[3.0, 6.0]], dtype=f64)      # 1,2  the weights: what we differentiate by
b = torch.tensor([-2.0], dtype=f64)            # 1    the bias, held fixed here


def neuron_loss(w):
    return 0.5 * ((Value(x) @ w.T + b).relu() - 40.0) ** 2


t = torch.tensor([[1.0, 0.0]], dtype=f64)      # the direction: move w1 only
jvp(neuron_loss, (w,), (t,))                   # (the loss, its tangent)"""),
        ("md", """\
Reverse mode, as in notebook 4: one backward pass from the loss gives its derivative by every weight at once,
the whole row."""),
        ("code", """\
wv = Value(w, requires_grad=True)
neuron_loss(wv).backward()
wv.grad                                        # dloss/dw1 = -12 (the tangent above), dloss/dw2 = -30"""),
        ("md", """\
That is the duality. Take a function with several outputs, here `z`, `a` and the loss, of the two weights:
its Jacobian is a 3×2 table of derivatives. A `jvp` along one weight's direction gives one column; a
backward pass from one output gives one row. `jacfwd` builds the table from two jvps, `jacrev` from three
backward passes, and they must agree."""),
        ("code", """\
def outputs(w):                                   # the weights -> (z, a, loss)
    z = Value(x) @ w.T + b
    return cat([z, z.relu(), 0.5 * (z.relu() - 40.0) ** 2], dim=1)   # 1,3


by_columns = jacfwd(outputs, w).reshape(3, 2)     # 2 jvps, one column each
by_rows = jacrev(outputs, w).reshape(3, 2)        # 3 backward passes, one row each
assert torch.equal(by_columns, by_rows)
by_columns"""),
        ("md", """\
Which mode is cheaper depends on the shape: forward mode pays one pass per input, reverse mode one per
output. Training has 13,002 weights and one loss, so it uses reverse mode.

Now derivatives of derivatives. With `create_graph=True` the engine records the backward pass itself, as it
records any forward pass, so the gradient is a `Value` that can be differentiated again: double backward."""),
        ("code", """\
leaf = Value(w, requires_grad=True)
(g,) = grad(neuron_loss(leaf), leaf, create_graph=True)   # [[-12, -30]], with a graph of its own
(row,) = grad(g[0, 0], leaf)                             # d(dloss/dw1)/dw: a row of the Hessian
g.data, row"""),
        ("md", """\
`hvp` multiplies the Hessian by a vector without forming it: the gradient is computed with `create_graph`
while forward mode is on, so the gradient's tangent is H·t (forward over reverse). `hessian` takes one hvp
per weight. Here dloss/dw = (a − 40)·x and ReLU's own second derivative is 0, so the Hessian is x xᵀ."""),
        ("code", """\
_, (Ht,) = hvp(neuron_loss, (w,), (t,))
H = hessian(neuron_loss, w).reshape(2, 2)
assert torch.equal(H, x.T @ x)                # x x^T = [[4, 10], [10, 25]]
Ht, H"""),
        ("md", """\
The picture: the loss along the direction t, `loss(w + s·t)`. The jvp gives the slope of the tangent line at
s = 0, and tᵀHt the curvature of the parabola. Where ReLU passes, the loss is exactly that parabola; at
z = 0 (s = −17) ReLU switches off, the loss stops changing, and the parabola no longer describes it."""),
        ("code", """\
s = torch.linspace(-25, 8, 331, dtype=f64)
along = torch.tensor([neuron_loss(Value(w + si * t)).item() for si in s])
value, slope = jvp(neuron_loss, (w,), (t,))
curvature = (t * Ht).sum()                       # t^T H t

fig, ax = plt.subplots(figsize=(8, 3.4))
ax.plot(s, along, linewidth=4, alpha=0.4, label="loss(w + s·t)")
ax.plot(s, value.item() + slope.item() * s, "--", label="tangent line: loss + s·(jvp)")
ax.plot(s, value.item() + slope.item() * s + 0.5 * curvature * s**2, ":", label="parabola: + s²·tᵀHt / 2 (hvp)")
ax.plot([0], [value.item()], "o", color="black")
ax.axvline(-17, color="gray", linewidth=0.5)
ax.text(-16.5, 1500, "z = 0: ReLU switches off", fontsize=9)
ax.set_xlabel("s (how far w1 moves)")
ax.set_ylim(-100, 1700)
ax.legend()
ax.set_title("the loss along t, its first and second derivatives at s = 0")
plt.show()"""),
        ("md", """\
Last, `torch.func` on the same numbers: the same derivatives, each computed by torch, must be equal.
(torch's forward-over-reverse compiles a few of its own rules with `torch.jit`, which warns about itself;
the filter keeps that note out.)"""),
        ("code", """\
import warnings

warnings.filterwarnings("ignore", message="`torch.jit.script` is deprecated", category=FutureWarning)


def torch_loss(w):
    return (0.5 * (torch.relu(x @ w.T + b) - 40.0) ** 2).sum()


def torch_outputs(w):
    z = x @ w.T + b
    return torch.cat([z, z.relu(), 0.5 * (z.relu() - 40.0) ** 2], dim=1)


pairs = {
    "jvp": (jvp(neuron_loss, (w,), (t,))[1], torch.func.jvp(torch_loss, (w,), (t,))[1]),
    "gradient": (wv.grad, torch.func.grad(torch_loss)(w)),
    "jacfwd": (by_columns, torch.func.jacfwd(torch_outputs)(w).reshape(3, 2)),
    "jacrev": (by_rows, torch.func.jacrev(torch_outputs)(w).reshape(3, 2)),
    "hvp": (Ht, torch.func.jvp(torch.func.grad(torch_loss), (w,), (t,))[1]),
    "hessian": (H, torch.func.hessian(torch_loss)(w).reshape(2, 2)),
}
for name, (engine, torch_func) in pairs.items():
    assert torch.equal(engine.flatten(), torch_func.flatten()), name     # the same numbers, to the last bit
    print(f"{name:9s} engine {engine.flatten().tolist()}  torch.func {torch_func.flatten().tolist()}")"""),
        ("md", """\
`examples/second_order.py` uses all of this at scale: Newton's method, w ← w − H⁻¹g, on this neuron, and the
largest eigenvalue of the whole network's Hessian by power iteration on `hvp`, beside 2 / learning rate
(*taxa de aprendizado*)."""),
    ],
}


def notebook(name: str) -> NotebookNode:
    """The notebook `name` as build.py defines it, without outputs."""
    cells = [new_markdown_cell(text) if kind == "md" else new_code_cell(text) for kind, text in NOTEBOOKS[name]]
    result = new_notebook(cells=cells)
    for number, cell in enumerate(result.cells):
        cell["id"] = f"cell-{number}"  # fixed ids (nbformat draws random ones): a rebuild changes nothing
    result.metadata["kernelspec"] = dict(name="python3", display_name="Python 3", language="python")
    return result


def execute(nb: NotebookNode, timeout: int = SECONDS_PER_CELL) -> NotebookNode:
    """Run `nb` top to bottom in place (cwd the repository root, one thread) and drop what varies between runs.

    Raises nbclient's CellExecutionError, naming the cell and its traceback, when a cell fails.
    """
    env = dict(os.environ, OMP_NUM_THREADS="1",  # one thread: the same float sums in the same order every run
               PYTHONPATH=os.pathsep.join([str(ROOT), *filter(None, [os.environ.get("PYTHONPATH")])]))
    # record_timing=False: no execution timestamps in the cells' metadata; coalesce_streams: a cell's printed
    # lines make one output, however the kernel happened to flush them
    client = NotebookClient(nb, timeout=timeout, kernel_name="python3", record_timing=False, coalesce_streams=True,
                            resources={"metadata": {"path": str(ROOT)}})
    client.execute(env=env)
    nb.metadata["language_info"] = {"name": "python"}  # the kernel also reports its Python's exact version
    return nb


def build(folder: Path | None = None) -> list[Path]:
    """Execute every notebook and write it, with its outputs, into `folder` (default: next to this file)."""
    paths = []
    for name in NOTEBOOKS:
        path = (folder or HERE) / name
        nbformat.write(execute(notebook(name)), path)
        paths.append(path)
    return paths


if __name__ == "__main__":
    for path in build():
        print(f"wrote {path}")
