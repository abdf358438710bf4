"""The whole scratch MLP against its torch twin, for every activation and loss; one SGD step."""

from __future__ import annotations

import itertools

import pytest
import torch

import scratch
from compare.base import agreement
from compare.checking.finite_diff import finite_difference, finite_difference_error, step_for
from compare.models import make_spec
from compare.models.family import KINKED_ACTIVATIONS
from compare.training.config import Config
from compare.training.learners import build_pair, parameter_mismatches

ACTIVATIONS = ["relu", "sigmoid", "tanh"]
LOSSES = ["cross-entropy", "mse"]
SMALL = dict(input_size=20, num_classes=5)


def small_pair(activation: str, loss: str, dtype: str, seed: int = 0):
    config = Config(loss=loss, dtype=dtype, seed=seed, lr=0.1, model=make_spec(hidden=(8, 6), activation=activation))
    return config, *build_pair(config, **SMALL)


def small_batch(dtype: torch.dtype, n: int = 12, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(n, 20, generator=g, dtype=dtype), torch.randint(0, 5, (n,), generator=g)


@pytest.mark.parametrize("activation,loss", list(itertools.product(ACTIVATIONS, LOSSES)))
@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_gradients_match_autograd(activation, loss, dtype):
    config, s, t = small_pair(activation, loss, dtype)
    assert parameter_mismatches(s, t) == []
    x, y = small_batch(config.torch_dtype)
    tol = agreement.gradient_tolerance(config.torch_dtype)
    agreement.assert_agree("loss", s.forward_backward(x, y), t.forward_backward(x, y), tol)
    grads_t = t.named_gradients()
    for name, g in s.named_gradients().items():
        agreement.assert_agree(name, g, grads_t[name], tol)


@pytest.mark.parametrize("activation,loss", list(itertools.product(ACTIVATIONS, LOSSES)))
def test_gradients_match_finite_differences(activation, loss):
    config, s, _ = small_pair(activation, loss, "float64")
    x, y = small_batch(torch.float64)
    s.forward_backward(x, y)
    params = s.named_parameters()
    for name, analytic in s.named_gradients().items():
        analytic = analytic.clone()
        coords = torch.arange(analytic.numel())
        numeric = finite_difference(lambda: s.loss_value(s.model.forward(x), y).item(), params[name], coords,
                                    h=step_for(activation in KINKED_ACTIVATIONS))
        error = finite_difference_error(numeric, analytic, coords)
        assert error <= agreement.FINITE_DIFF_FLOAT64.rtol, f"{name}: finite-difference relative error {error:.3e}"


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_one_sgd_step_is_equal(dtype):
    config, s, t = small_pair("relu", "cross-entropy", dtype)
    x, y = small_batch(config.torch_dtype)
    s.train_step(x, y)
    t.train_step(x, y)
    tol = agreement.gradient_tolerance(config.torch_dtype)
    after_t = t.named_parameters()
    for name, p in s.named_parameters().items():
        agreement.assert_agree(name, p, after_t[name], tol)


def test_default_is_the_lessons_network():
    model = scratch.MLP()
    shapes = [(n, tuple(p.shape)) for n, p in model.named_parameters()]
    assert shapes == [("layers.0.weight", (16, 784)), ("layers.0.bias", (16,)),
                      ("layers.2.weight", (16, 16)), ("layers.2.bias", (16,)),
                      ("layers.4.weight", (10, 16)), ("layers.4.bias", (10,))]
    assert model(torch.zeros(3, 784)).shape == (3, 10)


def test_state_dict_round_trip_and_mismatch():
    a, b = scratch.MLP(), scratch.MLP()
    b.load_state_dict(a.state_dict())
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters(), strict=True))
    with pytest.raises(KeyError, match="same spec"):
        scratch.MLP(hidden_sizes=(16,)).load_state_dict(a.state_dict())


def test_unknown_activation_is_explained():
    with pytest.raises(ValueError, match="relu, sigmoid, tanh"):
        scratch.MLP(activation="swish")


def test_sgd_rejects_bad_learning_rate():
    model = scratch.MLP()
    with pytest.raises(ValueError, match="positive"):
        scratch.SGD(model.parameters(), model.gradients(), lr=-0.1)
