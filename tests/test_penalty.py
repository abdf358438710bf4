"""L1 and L2 regularization: the scratch penalty's hand-written gradient against autograd's, and training with it.

    pytest tests/test_penalty.py -q

scratch/regularization.py adds dR/dw = l1 * sign(w) + l2 * w to the weights' gradient buffers after the backward
pass; torch_impl/regularization.py adds R(w) to the loss and lets autograd differentiate it. In float64 the two
must give the same gradients (to the last bit for one penalty), including at w = 0, where |w| has a kink and
autograd takes sgn(0) = 0; every family trains in lockstep with them; and the options are refused when negative.
"""

from __future__ import annotations

import json

import pytest
import torch

import scratch
import torch_impl
from compare import models
from compare.cli import main
from compare.training.config import Config
from compare.training.learners import build_pair
from compare.training.loop import train_lockstep
from scratch.regularization import Penalty, is_penalized

FAMILY_SHAPES = {"mlp": (12, 3), "cnn": (784, 10), "vit": (784, 10), "lstm": (784, 10)}  # input size, classes


@pytest.mark.parametrize("l1,l2", [(0.3, 0.0), (0.0, 0.7), (0.3, 0.7)], ids=["l1", "l2", "both"])
def test_hand_written_penalty_gradient_is_autograds(l1, l2):
    """R and dR/dw of the 12-8-3 network by hand, against autograd's on the torch twin: the same to the last bit for
    one penalty (a last-bit difference allowed for both, which autograd may add in another order); at the weights
    set exactly to 0, L1's subgradient is 0, as autograd's sgn(0)."""
    spec = models.make_spec(hidden=(8,), activation="tanh")
    torch.manual_seed(0)
    theirs = models.build(spec, "torch", 12, 3).double()
    ours = models.build(spec, "scratch", 12, 3).to(dtype=torch.float64)
    ours.load_state_dict(theirs.state_dict())
    with torch.no_grad():
        for model in (theirs.layers[0].weight, ours.layers.layers[0].weight):
            model[0, :4] = 0.0
    penalty = Penalty(ours.named_parameters(), ours.named_gradients(), l1=l1, l2=l2)
    for grad in ours.gradients():
        grad.zero_()
    value = penalty.value()
    penalty.backward()
    reference = torch_impl.regularization.Penalty(theirs, l1=l1, l2=l2)()
    reference.backward()
    exact = not (l1 and l2)
    assert (value == reference.detach()) if exact else abs(value - reference.detach()) <= 1e-15
    for (name, grad), (_, param) in zip(ours.named_gradients(), theirs.named_parameters(), strict=True):
        expected = param.grad if param.grad is not None else torch.zeros_like(param)
        assert (torch.equal(grad, expected) if exact else torch.allclose(grad, expected, rtol=0, atol=1e-15)), name
    zeroed = dict(ours.named_gradients())["layers.0.weight"][0, :4]
    assert torch.equal(zeroed, torch.full_like(zeroed, l2 * 0.0)), "L1's subgradient at w = 0 must be 0"
    assert not dict(ours.named_gradients())["layers.2.bias"].any(), "a bias was penalized"


@pytest.mark.parametrize("l1,l2", [(0.3, 0.0), (0.0, 0.7)], ids=["l1", "l2"])
def test_a_learners_step_includes_the_penalty_on_both_sides(l1, l2):
    """One forward and backward of each learner: the loss is the data loss plus R, and the gradients agree."""
    config = Config(dtype="float64", model=models.make_spec(hidden=(8,), activation="tanh"), l1=l1, l2=l2)
    s, t = build_pair(config, input_size=12, num_classes=3)
    g = torch.Generator().manual_seed(1)
    x, y = torch.randn(16, 12, generator=g, dtype=torch.float64), torch.randint(0, 3, (16,), generator=g)
    loss_s, loss_t = s.forward_backward(x, y), t.forward_backward(x, y)
    data_only = s.loss_value(s.logits(x), y)
    assert abs(loss_s - loss_t) <= 1e-14 and loss_s - data_only > 0.01, (loss_s, loss_t, data_only)
    theirs = t.named_gradients()
    for name, grad in s.named_gradients().items():
        assert torch.allclose(grad, theirs[name], rtol=0, atol=1e-14), name
    plain, _ = build_pair(Config(dtype="float64", model=config.model), input_size=12, num_classes=3)
    plain.forward_backward(x, y)
    assert not torch.allclose(plain.named_gradients()["layers.0.weight"], s.named_gradients()["layers.0.weight"])
    assert torch.equal(plain.named_gradients()["layers.0.bias"], s.named_gradients()["layers.0.bias"])


def test_penalty_value_and_gradient_by_formula():
    w = torch.tensor([[1.5, -2.0], [0.0, 0.25]], dtype=torch.float64)
    b = torch.tensor([3.0, -4.0], dtype=torch.float64)
    dw, db = torch.zeros_like(w), torch.zeros_like(b)
    penalty = Penalty({"fc.weight": w, "fc.bias": b}, {"fc.weight": dw, "fc.bias": db}, l1=0.1, l2=0.5)
    assert penalty.names == ["fc.weight"]  # the bias is not penalized
    assert float(penalty.value()) == pytest.approx(0.1 * 3.75 + 0.5 * 0.5 * (2.25 + 4 + 0.0625))
    penalty.backward()
    assert dw.tolist() == [[0.1 + 0.75, -0.1 - 1.0], [0.0, 0.1 + 0.125]] and db.tolist() == [0.0, 0.0]
    with pytest.raises(ValueError, match="rates must be >= 0"):
        Penalty({}, {}, l1=-1.0)


@pytest.mark.parametrize("family", list(models.FAMILIES))
def test_the_same_weights_are_penalized_on_both_sides(family):
    """Weight matrices and kernels only: no bias, no norm scale, no embedding, in every family, on both sides."""
    spec = models.make_spec(family)
    size, classes = FAMILY_SHAPES[family]
    ours = {n for n, p in models.build(spec, "scratch", size, classes).named_parameters() if is_penalized(n, p.shape)}
    theirs = torch_impl.regularization.Penalty(models.build(spec, "torch", size, classes))
    names = {n for n, p in models.build(spec, "torch", size, classes).named_parameters()
             if any(p.shape == w.shape for w in theirs.weights) and is_penalized(n, p.shape)}
    assert ours == names and ours, family
    assert all("bias" not in n and "norm" not in n for n in ours), ours


@pytest.mark.parametrize("family,engine", [(f, "hand") for f in models.FAMILIES] + [("mlp", "autograd")],
                         ids=[*models.FAMILIES, "mlp-engine"])
def test_every_family_trains_in_lockstep_with_l1_and_l2(family, engine):
    """Two epochs of 48 random examples in float64 with both penalties: every per-step loss within 1e-12 (the
    scratch autograd engine takes the penalty by hand too)."""
    size, classes = FAMILY_SHAPES[family]
    config = Config(dtype="float64", model=models.make_spec(family), l1=1e-3, l2=1e-2, lr=0.05, batch_size=16,
                    engine=engine)
    learners = build_pair(config, input_size=size, num_classes=classes)
    g = torch.Generator().manual_seed(0)
    x, y = torch.randn(48, size, generator=g, dtype=torch.float64), torch.randint(0, classes, (48,), generator=g)
    records = train_lockstep(learners, x, y, x[:8], y[:8], epochs=2, batch_size=16, seed=0, progress=False)
    a, b = records["scratch"].step_losses, records["torch"].step_losses
    assert len(a) == 6 and max(abs(u - v) for u, v in zip(a, b, strict=True)) <= 1e-12, (a, b)


def test_l2_shrinks_the_weights_and_l1_zeroes_more_of_them():
    """What the penalties are for: after the same 300 steps, L2's weights are smaller than without a penalty, and
    L1 leaves more weights near 0 than L2 does at a similar strength."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(200, 12, generator=g, dtype=torch.float64)
    y = (x[:, 0] > 0).long()  # one useful input of twelve

    def trained(**rates):
        config = Config(dtype="float64", model=models.make_spec(hidden=(8,)), lr=0.1, batch_size=20, **rates)
        learner, _ = build_pair(config, input_size=12, num_classes=2)
        train_lockstep([learner], x, y, x, y, epochs=30, batch_size=20, seed=0, progress=False)
        return learner.named_parameters()["layers.0.weight"]

    plain, l2, l1 = trained(), trained(l2=0.05), trained(l1=0.01)
    assert l2.norm() < 0.8 * plain.norm()
    assert (l1.abs() < 1e-3).sum() > 2 * max(1, (l2.abs() < 1e-3).sum())


def test_train_takes_l1_and_l2_and_refuses_a_negative_rate(tiny_data_root, tmp_path, capsys):
    report = tmp_path / "r.json"
    common = ["train", "--data-root", str(tiny_data_root), "--hidden", "8", "--batch-size", "20", "--epochs", "1",
              "--dtype", "float64"]
    assert main([*common, "--l1", "1e-3", "--l2", "1e-2", "--report", str(report)]) == 0
    out = capsys.readouterr().out
    assert "L1 penalty 0.001, L2 penalty 0.01" in out and "Verdict: PASSED" in out
    config = json.loads(report.read_text())["config"]
    assert config["l1"] == 1e-3 and config["l2"] == 1e-2 and config["weight_decay"] == 0
    assert main([*common, "--l2", "-1"]) == 2
    err = capsys.readouterr().err
    assert "--l2 must be a finite rate of 0 or more, got -1.0" in err and len(err.strip().splitlines()) == 1
    assert scratch.regularization.Penalty  # the scratch side has it under its own name (not only torch's)
