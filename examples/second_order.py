"""Second derivatives from the engine: Newton's method on the lesson's neuron, and how sharp the lesson's network is.

    python examples/second_order.py                # seconds on one thread
    python examples/second_order.py --lr 1         # 2/lr below lambda_max at initialization: what does SGD do?

1. Newton's method on the lesson's neuron (inputs 2 and 5, weights 3 and 6, bias -2: z = 34) with a sigmoid, fitted
   to the target 1 by the log loss -log sigmoid(z) plus weight decay (lambda/2)|theta|^2, theta = (w1, w2, b). Why:
   with one example the Hessian of any loss of z is s x x^T, x = (2, 5, 1), of rank 1, with no inverse; weight decay
   adds lambda I. The log loss of a sigmoid is convex (s = sigmoid'(z) > 0), so H is positive definite everywhere
   and the minimum unique (the squared error of a sigmoid is not convex). A Newton step is theta <- theta - H^-1 g,
   g and H by the engine (grad, hessian); gradient descent, theta <- theta - lr g, needs far more steps.
2. Sharpness: the largest eigenvalue lambda_max of the Hessian of the 784-16-16-10 network's cross-entropy on real
   digits, by power iteration v <- H v / |H v|, each H v an engine.hvp (forward over reverse) over all 13,002
   parameters, H never formed. Gradient descent at learning rate lr is stable along a direction of curvature
   lambda only while lambda < 2/lr (the edge of stability): past it, the steps along that direction overshoot and
   grow until they throw the network to a flatter place. Measured along one epoch of SGD (the project's one loop),
   each value checked against the same power iteration in torch (autograd.grad twice).
"""

import argparse
import os
from functools import partial

import torch

import torch_impl
from compare.data.mnist import DataError, load_dataset
from compare.training.config import Config
from compare.training.learners import build_engine
from compare.training.loop import train_lockstep
from scratch import engine
from scratch.engine import Value

F64 = torch.float64
INPUTS, START = torch.tensor([2.0, 5.0], dtype=F64), torch.tensor([3.0, 6.0, -2.0], dtype=F64)  # w 3 and 6, b -2
TOLERANCE = 1e-10  # a run has reached the minimum when its loss is this close to Newton's last one


def neuron_loss(theta: Value, weight_decay: float) -> Value:
    z = (theta[:2] * INPUTS).sum() + theta[2]  # 2*3 + 5*6 - 2 = 34 at the start
    return -z.sigmoid().log() + 0.5 * weight_decay * (theta * theta).sum()  # the target 1


def descend(loss, step, steps: int) -> list[float]:
    """The loss before each step and after the last, stepping theta <- theta - step(theta, g), g by engine.grad."""
    theta, losses = START.clone(), []
    for _ in range(steps + 1):
        value = Value(theta, requires_grad=True)
        out = loss(value)
        losses.append(out.item())
        (g,) = engine.grad(out, value)
        theta = theta - step(theta, g)
    return losses


def mlp_loss(x: torch.Tensor, y: torch.Tensor):
    """The network's cross-entropy on (x, y) as a function of its six parameter tensors, as hvp takes it."""
    x = Value(x)

    def loss(w0, b0, w1, b1, w2, b2):
        h = (x @ w0.T + b0).relu()  # B,16
        h = (h @ w1.T + b1).relu()  # B,16
        return engine.cross_entropy(h @ w2.T + b2, y)  # B,10 -> one number
    return loss


def power_iteration(hvp, like: list[torch.Tensor], iterations: int, seed: int) -> tuple[float, float]:
    """(v^T H v, |H v - lambda v| / lambda) after v <- H v / |H v| from a seeded random v: the eigenvalue of largest
    magnitude (positive: a valley's curvature), and how far v is from its eigenvector."""
    generator = torch.Generator().manual_seed(seed)
    v = [torch.randn(t.shape, generator=generator, dtype=F64) for t in like]
    for _ in range(iterations):
        norm = torch.sqrt(sum((t * t).sum() for t in v))
        v = [t / norm for t in v]
        hv = hvp(v)
        eigenvalue = sum((a * b).sum() for a, b in zip(v, hv, strict=True)).item()  # the Rayleigh quotient
        residual = torch.sqrt(sum(((a - eigenvalue * b) ** 2).sum() for a, b in zip(hv, v, strict=True))).item()
        v = list(hv)
    return eigenvalue, residual / abs(eigenvalue)


def torch_hvp(parameters: dict[str, torch.Tensor], x: torch.Tensor, y: torch.Tensor):
    """H v by torch on torch_impl's twin, reverse over reverse: grad(<grad(loss, create_graph), v>)."""
    twin = torch_impl.MLP().to(dtype=F64)
    twin.load_state_dict(parameters)
    weights = list(twin.parameters())

    def hvp(v):
        g = torch.autograd.grad(torch.nn.functional.cross_entropy(twin(x), y), weights, create_graph=True)
        return torch.autograd.grad(sum((a * b).sum() for a, b in zip(g, v, strict=True)), weights)
    return hvp


def sharpness(step: int, parameters: dict[str, torch.Tensor], x, y, args) -> None:
    tensors = [p.clone() for p in parameters.values()]
    ours, residual = power_iteration(lambda v: engine.hvp(mlp_loss(x, y), tensors, v)[1], tensors,
                                     args.power_iterations, args.seed)
    theirs, _ = power_iteration(torch_hvp(parameters, x, y), tensors, args.power_iterations, args.seed)
    print(f"step {step:5d}  lambda_max {ours:8.4f} (residual {residual:.0e})  torch {theirs:8.4f} (relative "
          f"difference {abs(ours - theirs) / abs(theirs):.1e})  {'below' if ours < 2 / args.lr else 'ABOVE'} 2/lr")


def main():
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--weight-decay", type=float, default=0.2, help="lambda of the neuron's loss (default: 0.2)")
    parser.add_argument("--gd-steps", type=int, default=2000, help="gradient descent steps taken (default: 2000)")
    parser.add_argument("--lr", type=float, default=0.1, help="step size of gradient descent and SGD (default: 0.1)")
    parser.add_argument("--train-images", type=int, default=60000, help="images SGD trains on (default: 60000)")
    parser.add_argument("--hessian-images", type=int, default=1000,
                        help="the Hessian is the loss's on the first this many training images (default: 1000)")
    parser.add_argument("--measure-at", default="10,20,50,100,300,1000",
                        help="steps to measure lambda_max after, besides 0 and the last (default: %(default)s)")
    parser.add_argument("--power-iterations", type=int, default=100, help="H v products per eigenvalue (default: 100)")
    parser.add_argument("--seed", type=int, default=0, help="seed of the weights, batches and first v (default: 0)")
    parser.add_argument("--data-root", default=os.environ.get("MNIST_DATA_ROOT", "data"),
                        help="folder holding mnist/ (default: $MNIST_DATA_ROOT, else ./data)")
    args = parser.parse_args()
    try:
        data = load_dataset("mnist", args.data_root, dtype=F64)
    except DataError as error:  # one line that says what is missing, where it looked, and $MNIST_DATA_ROOT
        parser.exit(2, f"error: {error}\n")

    loss = partial(neuron_loss, weight_decay=args.weight_decay)
    newton = descend(loss, lambda theta, g: torch.linalg.solve(engine.hessian(loss, theta), g), steps=8)
    gd = descend(loss, lambda theta, g: args.lr * g, args.gd_steps)
    minimum = newton[-1]
    for k, value in enumerate(newton):
        print(f"Newton step {k:2d}  loss {value:.16f}  above the last {value - minimum:8.1e}")
    for k in (k for k in (1, 10, 100, 1000, 10000) if k <= args.gd_steps):
        print(f"gradient descent step {k:5d}  loss {gd[k]:.16f}  above Newton's last {gd[k] - minimum:8.1e}")
    newton_at, gd_at = (next((k for k, v in enumerate(run) if v - minimum <= TOLERANCE), None) for run in (newton, gd))
    print(f"Newton's method is within {TOLERANCE:g} of its last loss after {newton_at} steps; gradient descent "
          f"(lr {args.lr:g}) {f'after {gd_at}' if gd_at is not None else f'not within its {args.gd_steps}'} steps")

    x, y = data.x_train[:args.hessian_images], data.y_train[:args.hessian_images]
    config = Config(dtype="float64", lr=args.lr, lr_schedule="none", epochs=1, seed=args.seed)
    learner = build_engine(config)  # the lesson's network on the engine, drawn from the seed as scratch.MLP is
    print(f"lambda_max of the loss on {len(x)} images along an epoch of SGD at lr {args.lr:g}: 2/lr = {2 / args.lr:g}")
    sharpness(0, learner.named_parameters(), x, y, args)
    at, n = {int(step) for step in args.measure_at.split(",")}, args.train_images
    record = train_lockstep([learner], data.x_train[:n], data.y_train[:n], data.x_test, data.y_test, epochs=1,
                            batch_size=config.batch_size, seed=args.seed, progress=False, after_step=lambda step:
                            step in at and sharpness(step, learner.named_parameters(), x, y, args))[learner.name]
    sharpness(len(record.step_losses), learner.named_parameters(), x, y, args)
    print(f"after the epoch ({len(record.step_losses)} steps): test accuracy {record.history[-1].test_accuracy:.2%}")

if __name__ == "__main__":
    main()
