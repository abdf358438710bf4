"""Checkpoints load across: scratch <-> torch state dicts (buffers too), train --save, evaluate --checkpoint."""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import pytest
import torch

import scratch
import torch_impl
from compare.cli import main


def one_line_error(capsys) -> str:
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "Traceback" not in err, err
    return err


def trained_bn_pair() -> tuple[scratch.MLP, torch_impl.MLP]:
    torch.manual_seed(0)
    s = scratch.MLP(input_size=6, hidden_sizes=(5,), num_classes=3, batch_norm=True).to(dtype=torch.float64)
    torch.manual_seed(0)
    t = torch_impl.MLP(input_size=6, hidden_sizes=(5,), num_classes=3, batch_norm=True).to(dtype=torch.float64)
    for _ in range(3):  # running statistics move away from their initial 0 and 1
        x = torch.randn(8, 6, dtype=torch.float64)
        s.forward(x)
        t(x)
    return s, t


def test_scratch_state_dict_has_torch_keys_buffers_and_order():
    s, t = trained_bn_pair()
    assert list(s.state_dict()) == list(t.state_dict())
    assert "layers.1.running_mean" in s.state_dict() and "layers.1.num_batches_tracked" in s.state_dict()
    for name, value in t.state_dict().items():  # running statistics: the same sums in another order
        torch.testing.assert_close(s.state_dict()[name], value, rtol=1e-12, atol=1e-15, msg=name)


@pytest.mark.parametrize("direction", ["scratch->torch", "torch->scratch"])
def test_state_loads_across_with_batch_norm(direction):
    s, t = trained_bn_pair()
    torch.manual_seed(1)
    fresh_s = scratch.MLP(input_size=6, hidden_sizes=(5,), num_classes=3, batch_norm=True).to(dtype=torch.float64)
    fresh_t = torch_impl.MLP(input_size=6, hidden_sizes=(5,), num_classes=3, batch_norm=True).to(dtype=torch.float64)
    if direction == "scratch->torch":
        fresh_t.load_state_dict(s.state_dict())
        source, target = s.eval(), fresh_t.eval()
        x = torch.randn(4, 6, dtype=torch.float64)
        assert torch.allclose(target(x).detach(), source.forward(x), rtol=0, atol=1e-14)
    else:
        fresh_s.load_state_dict(t.state_dict())
        x = torch.randn(4, 6, dtype=torch.float64)
        assert torch.allclose(fresh_s.eval().forward(x), t.eval()(x).detach(), rtol=0, atol=1e-14)


def test_load_state_dict_names_what_does_not_fit():
    s, _ = trained_bn_pair()
    plain = scratch.MLP(input_size=6, hidden_sizes=(5,), num_classes=3)
    with pytest.raises(KeyError, match="unexpected.*running_mean"):
        plain.load_state_dict(s.state_dict())


def test_to_keeps_an_optimizer_made_before_it_working():
    model = scratch.MLP(input_size=4, hidden_sizes=(3,), num_classes=2)
    optimizer = scratch.SGD(model.parameters(), model.gradients(), lr=0.1)
    model.to(dtype=torch.float64)
    x, y = torch.randn(5, 4, dtype=torch.float64), torch.tensor([0, 1, 1, 0, 1])
    loss_fn = scratch.CrossEntropyLoss()
    before = [p.clone() for p in model.parameters()]
    loss_fn.forward(model.forward(x), y)
    model.backward(loss_fn.backward())
    optimizer.step()
    assert all(p.dtype == torch.float64 for p in model.parameters())
    assert all(not torch.equal(a, b) for a, b in zip(before, model.parameters(), strict=True))


def save_run(tiny_data_root: Path, folder: Path, *extra: str) -> dict:
    report = folder.parent / f"{folder.name}-train.json"
    assert main(["train", "--data-root", str(tiny_data_root), "--hidden", "8", "--batch-size", "20", "--epochs", "1",
                 "--save", str(folder), "--report", str(report), *extra]) == 0
    return json.loads(report.read_text())


@pytest.mark.parametrize("dtype", ["float64", "float32"])
def test_train_save_then_evaluate_agrees_four_ways(tiny_data_root, tmp_path, dtype, capsys):
    trained = save_run(tiny_data_root, tmp_path / "run", "--batch-norm", "--dtype", dtype)
    report_path = tmp_path / "evaluate.json"
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run"), "--data-root", str(tiny_data_root),
                 "--report", str(report_path)]) == 0
    report = json.loads(report_path.read_text())
    accuracies = {k: report[k]["test_accuracy"] for k in ("scratch", "torch", "scratch_in_torch", "torch_in_scratch")}
    assert report["agreement"]["passed"] is True
    assert accuracies["scratch"] == trained["scratch"]["test_accuracy"]
    assert accuracies["torch"] == trained["torch"]["test_accuracy"]
    if dtype == "float64":
        assert len(set(accuracies.values())) == 1, accuracies
    assert "scratch_in_torch" in capsys.readouterr().out


def test_evaluate_refuses_damaged_or_mismatched_checkpoints(tiny_data_root, tmp_path, capsys):
    save_run(tiny_data_root, tmp_path / "run", "--dtype", "float64")
    capsys.readouterr()

    def evaluate(folder: Path) -> str:
        assert main(["evaluate", "--checkpoint", str(folder), "--data-root", str(tiny_data_root)]) == 2
        return one_line_error(capsys)

    assert "no checkpoint folder" in evaluate(tmp_path / "nowhere")
    truncated = tmp_path / "truncated"
    shutil.copytree(tmp_path / "run", truncated)
    data = (truncated / "torch.pt").read_bytes()
    (truncated / "torch.pt").write_bytes(data[: len(data) // 2])
    assert "torch.pt cannot be read" in evaluate(truncated) and "damaged" in evaluate(truncated)
    other = tmp_path / "other-architecture"
    shutil.copytree(tmp_path / "run", other)
    meta = json.loads((other / "config.json").read_text())
    meta["model"]["hidden"] = [9]
    (other / "config.json").write_text(json.dumps(meta))
    assert "does not fit" in evaluate(other)
    other_dtype = tmp_path / "other-dtype"
    shutil.copytree(tmp_path / "run", other_dtype)
    meta = json.loads((other_dtype / "config.json").read_text())
    meta["settings"]["dtype"] = "float32"
    (other_dtype / "config.json").write_text(json.dumps(meta))
    assert "float64 tensors" in evaluate(other_dtype)
    (truncated / "config.json").write_text("{not json")
    assert "config.json is damaged" in evaluate(truncated)


def runs_code_when_unpickled() -> None:
    """Not a tensor: a pickle of a state dict holding it would import this module and call into it."""


def test_a_checkpoint_holding_code_is_refused_as_such_in_one_whole_line(tiny_data_root, tmp_path, capsys):
    save_run(tiny_data_root, tmp_path / "run", "--dtype", "float64")
    state = torch.load(tmp_path / "run" / "scratch.pt", weights_only=True)
    torch.save({**state, "hook": runs_code_when_unpickled}, tmp_path / "run" / "scratch.pt")
    capsys.readouterr()
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run"), "--data-root", str(tiny_data_root)]) == 2
    err = one_line_error(capsys)
    assert "scratch.pt holds objects that could run code" in err and "damaged" not in err, err
    assert "runs_code_when_unpickled" in err and err.endswith("Re-save it with `train --save`"), err


def test_save_into_a_file_is_refused_before_training(tiny_data_root, tmp_path, capsys):
    path = tmp_path / "a-file"
    path.write_text("x")
    assert main(["train", "--data-root", str(tiny_data_root), "--save", str(path)]) == 2
    assert "--save" in one_line_error(capsys) and "Epoch" not in capsys.readouterr().out


def test_evaluate_fails_when_a_model_is_not_what_was_trained(tiny_data_root, tmp_path, capsys):
    save_run(tiny_data_root, tmp_path / "run", "--dtype", "float64")
    meta = json.loads((tmp_path / "run" / "config.json").read_text())
    meta["test_accuracy"]["torch"] += 0.01  # as if torch.pt were another run's
    (tmp_path / "run" / "config.json").write_text(json.dumps(meta))
    assert main(["evaluate", "--checkpoint", str(tmp_path / "run"), "--data-root", str(tiny_data_root)]) == 1
    assert "[FAIL] each model's test accuracy equals the training run's" in capsys.readouterr().out
