"""`train --cuda-graph` and `bench --cuda-graph`: the scratch step captured as one CUDA graph (graphed.py).

Everywhere: every refusal (a network, optimizer or device that cannot be captured) is one line and exit status
2, said before anything runs; the graphed learner is the plain one in every other respect. With a CUDA GPU
(skipped without one): replays give the losses of eager steps bit for bit, through a batch of another size and
a change of the learning rate; train and bench with the flag.

    pytest tests/test_cuda_graph.py -q
"""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from conftest import requires_cuda

import scratch
from compare import models
from compare.cli import main
from compare.training import graphed
from compare.training.config import Config
from compare.training.learners import ScratchLearner, build_scratch

NO_GPU = not torch.cuda.is_available()


@pytest.mark.parametrize("settings,reason", [
    (dict(engine="autograd"), "scratch autograd engine"),
    (dict(dropout=0.2), "cannot capture dropout"),
    (dict(optimizer="adam"), "cannot capture --optimizer adam"),
    (dict(optimizer="adamw"), "cannot capture --optimizer adamw"),
])
def test_what_cannot_be_captured_is_refused_with_the_reason_on_any_machine(settings: dict, reason: str) -> None:
    for device in ("cpu", "cuda"):
        said = graphed.refusal(device, **settings)
        assert reason in said and "\n" not in said


def test_the_device_is_refused_last_and_says_what_to_do() -> None:
    if NO_GPU:
        assert graphed.refusal("cpu") == graphed.refusal("cuda")
        assert "torch.cuda.is_available() is False" in graphed.refusal("cpu")
    else:
        assert graphed.refusal("cuda") is None
        assert "add --device cuda" in graphed.refusal("cpu")
    assert graphed.refusal("cpu", optimizer="momentum") == graphed.refusal("cpu", optimizer="nesterov")


@pytest.mark.parametrize("args,reason", [
    (["--optimizer", "adam"], "cannot capture --optimizer adam"),
    (["--engine", "autograd"], "scratch autograd engine"),
    (["--dropout", "0.1"], "cannot capture dropout"),
    ([], "torch.cuda.is_available() is False" if NO_GPU else "add --device cuda"),
])
def test_train_refuses_before_loading_any_data(args: list[str], reason: str, tmp_path: Path, capsys) -> None:
    code = main(["train", "--cuda-graph", "--data-root", str(tmp_path / "no-data-here"), *args])
    err = capsys.readouterr().err
    assert code == 2 and reason in err and len(err.strip().splitlines()) == 1, err


@pytest.mark.skipif(not NO_GPU, reason="on a GPU machine the flag is accepted")
def test_bench_refuses_without_a_gpu(tmp_path: Path, capsys) -> None:
    assert main(["bench", "--cuda-graph", "--quick", "--data-root", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert "needs a CUDA GPU" in err and len(err.strip().splitlines()) == 1


def test_bench_refuses_cuda_graph_with_autograd_modes(capsys) -> None:
    assert main(["bench", "--cuda-graph", "--autograd-modes"]) == 2
    assert "--cuda-graph times the training step" in capsys.readouterr().err


def test_the_graphed_learner_is_the_plain_one_and_its_copies_are_plain() -> None:
    plain = build_scratch(Config(model=models.make_spec("mlp", hidden=(8,)), dtype="float64"))
    learner = graphed.GraphedScratchLearner.of(plain)
    assert learner.model is plain.model and learner.optimizer is plain.optimizer and learner.loss_fn is plain.loss_fn
    assert learner.label == "scratch (hand-written, CUDA graph)"
    twin = copy.deepcopy(learner)  # what the re-synchronized checks take
    assert type(twin) is ScratchLearner and twin.model is not plain.model
    assert all(torch.equal(a, b) for a, b in zip(twin.model.parameters(), plain.model.parameters(), strict=True))


def test_the_graph_keeps_every_workspace_of_the_model_alive() -> None:
    """What a replay reads and writes must not be freed when an eager forward of another size replaces it."""
    model = scratch.LSTMClassifier(input_size=4, hidden_size=3)
    model.forward(torch.randn(2, 16))
    model.backward(torch.randn(2, 10), input_grad=False)
    found = graphed.workspaces(model)
    assert {id(t) for t in model.lstm.workspaces.values()} <= {id(t) for t in found}
    layers = scratch.Sequential(scratch.Conv2d(1, 2, 3, stride=2, padding=1), scratch.BatchNorm2d(2),
                                scratch.MaxPool2d(2), scratch.Conv2d(2, 3, 3, padding=1))
    out = layers.forward(torch.randn(2, 1, 8, 8))
    layers.backward(torch.randn_like(out))
    kept = {id(t) for t in graphed.workspaces(layers)}
    strided, norm, pool, plain = layers.layers
    assert id(strided.cols) in kept and id(plain.workspaces["strips"]) in kept  # both ways of lowering the input
    assert {id(t) for layer in (norm, pool) for t in layer.workspaces.values()} <= kept


# ------------------------------------------------------------------------------------------- on a CUDA GPU


def cuda_learner(spec: str, lr: float = 0.05) -> ScratchLearner:
    return build_scratch(Config(model=models.parse_spec(spec), device="cuda", dtype="float64", lr=lr))


@requires_cuda
@pytest.mark.parametrize("spec", ["mlp", "cnn", "cnn:batch_norm=true", "vit", "lstm:hidden_size=16"])
def test_replays_give_the_losses_of_eager_steps_bit_for_bit(spec: str) -> None:
    eager, graph = cuda_learner(spec), cuda_learner(spec)
    step = graphed.GraphedStep(graph)
    g = torch.Generator().manual_seed(0)
    sizes = [8, 8, 8, 8, 5, 8, 8]  # warm-up, capture, replays, an epoch's smaller last batch, replays again
    for k, size in enumerate(sizes):
        x = torch.randn(size, 784, generator=g, dtype=torch.float64).cuda()
        y = torch.randint(0, 10, (size,), generator=g).cuda()
        if k == 5:  # a schedule's new learning rate: captured again
            eager.optimizer.lr = graph.optimizer.lr = 0.02
        expected = eager.train_step(x, y)
        assert step.step(x, y).item() == expected, f"step {k}"
    assert step.captures == 2 and step.eager_steps == graphed.WARMUP_STEPS
    for a, b in zip(eager.model.parameters(), graph.model.parameters(), strict=True):
        assert torch.equal(a, b)


@requires_cuda
def test_train_with_the_graph_gives_the_same_run_bit_for_bit(tiny_data_root: Path, tmp_path: Path) -> None:
    common = ["train", "--device", "cuda", "--dtype", "float64", "--epochs", "2", "--data-root", str(tiny_data_root),
              "--model", "cnn", "--batch-size", "48"]
    assert main([*common, "--report", str(tmp_path / "eager.json")]) == 0
    assert main([*common, "--cuda-graph", "--report", str(tmp_path / "graph.json")]) == 0
    eager, graph = (json.loads((tmp_path / f"{n}.json").read_text()) for n in ("eager", "graph"))
    assert graph["scratch"]["step_losses"] == eager["scratch"]["step_losses"]
    assert graph["agreement"]["passed"] and graph["scratch"]["implementation"] == "hand-written, CUDA graph"


@requires_cuda
def test_bench_times_the_graphed_step_beside_reduce_overhead(tiny_data_root: Path, tmp_path: Path) -> None:
    report = tmp_path / "bench.json"
    code = main(["bench", "--device", "cuda", "--cuda-graph", "--quick", "--no-typical", "--compile",
                 "--data-root", str(tiny_data_root), "--models", "mlp", "--repeats", "2", "--block-seconds", "0.01",
                 "--report", str(report)])
    r = json.loads(report.read_text())
    assert code == 0, r["agreement"]
    point = r["results"][0]
    assert point["contenders"]["graphed"]["status"] == "ok" and point["agreement"]["graphed_identical"] is True
    assert point["graphed_ratio"] > 0
