"""The same checks on a CUDA GPU: device and dtype follow the parameters. Skipped without a GPU."""

from __future__ import annotations

import pytest
import torch
from conftest import requires_cuda

from compare.base import agreement
from compare.models import make_spec
from compare.training.config import Config
from compare.training.learners import build_pair, parameter_mismatches
from compare.training.loop import train_lockstep

pytestmark = [requires_cuda, pytest.mark.cuda]


@pytest.mark.parametrize("dtype", ["float64", "float32"])
@pytest.mark.parametrize("activation,loss", [("relu", "cross-entropy"), ("sigmoid", "mse"), ("tanh", "cross-entropy")])
def test_gradients_match_autograd_on_cuda(dtype, activation, loss):
    config = Config(dtype=dtype, loss=loss, device="cuda", model=make_spec(activation=activation))
    s, t = build_pair(config)
    assert parameter_mismatches(s, t) == []
    assert all(p.is_cuda for p in s.named_parameters().values())
    g = torch.Generator().manual_seed(0)
    x = torch.randn(64, 784, generator=g).to("cuda", config.torch_dtype)
    y = torch.randint(0, 10, (64,), generator=g).to("cuda")
    tol = agreement.gradient_tolerance(config.torch_dtype)
    agreement.assert_agree("loss", s.forward_backward(x, y), t.forward_backward(x, y), tol)
    grads_t = t.named_gradients()
    for name, grad in s.named_gradients().items():
        assert grad.is_cuda
        agreement.assert_agree(name, grad, grads_t[name], tol)


def test_cuda_starts_from_the_same_parameters_as_cpu():
    cpu_s, _ = build_pair(Config(dtype="float64"))
    cuda_s, _ = build_pair(Config(dtype="float64", device="cuda"))
    for name, p in cpu_s.named_parameters().items():
        assert torch.equal(p, cuda_s.named_parameters()[name].cpu())


def test_float64_lockstep_on_cuda(mnist64):
    data = mnist64.to(device="cuda")
    s, t = build_pair(Config(dtype="float64", device="cuda", lr=0.05, seed=1))
    records = train_lockstep([s, t], data.x_train[:640], data.y_train[:640], data.x_test[:1000], data.y_test[:1000],
                             epochs=5, batch_size=32, seed=1, progress=False)
    ls, lt = records["scratch"].step_losses, records["torch"].step_losses
    worst = max(abs(a - b) / abs(b) for a, b in zip(ls, lt, strict=True))
    assert worst <= agreement.LOCKSTEP_LOSS_FLOAT64, f"largest per-step relative loss difference {worst:.3e}"


@pytest.mark.parametrize("command", [["ddp", "--shard", "optimizer"], ["ddp", "--shard", "parameters"], ["tp"]])
def test_sharding_and_tensor_parallelism_over_nccl(command, tiny_data_root, tmp_path):
    """One process per GPU (two at most): the hand rings over NCCL, against fully_shard / ZeroRedundancyOptimizer
    / parallelize_module on the GPU and one process."""
    import json

    from compare.cli import main

    n = min(2, torch.cuda.device_count())
    report = tmp_path / "report.json"
    assert main([*command, "--nproc", str(n), "--device", "cuda", "--dtype", "float64", "--batch-size", "32",
                 "--data-root", str(tiny_data_root), "--report", str(report), "--run-timeout", "300"]) == 0
    result = json.loads(report.read_text())
    assert result["backend"] == "nccl" and result["agreement"]["passed"]
