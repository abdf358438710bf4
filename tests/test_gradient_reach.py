"""scripts/gradient_reach.py, which writes the |dL/dh_t| table of docs/recurrence.md: its RNN classifier's
gradients are torch's, and the script prints the table's rows."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from pathlib import Path

import torch
from idx_files import make_dataset
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
SCRIPT = ROOT / "scripts" / "gradient_reach.py"


def load_script():
    spec = importlib.util.spec_from_file_location("gradient_reach", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_rnn_classifier_gradients_are_torchs():
    """The tanh RNN in LSTMClassifier's place backpropagates through time as nn.RNN + nn.Linear do."""
    torch.manual_seed(0)
    model = load_script().RNNClassifier(hidden_size=8)
    rnn, head = nn.RNN(28, 8, batch_first=True), nn.Linear(8, 10)
    with torch.no_grad():
        for name, p in model.named_parameters():
            layer, attr = name.split(".")
            getattr(rnn if layer == "lstm" else head, attr).copy_(p)
    x = torch.randn(4, 784)
    dlogits = torch.randn(4, 10)  # a random upstream gradient exercises every output
    model.forward(x)
    model.backward(dlogits, input_grad=False)
    out, _ = rnn(x.view(4, 28, 28))
    (head(out[:, -1]) * dlogits).sum().backward()
    torch_grads = {f"lstm.{n}": p.grad for n, p in rnn.named_parameters()}
    torch_grads.update({f"head.{n}": p.grad for n, p in head.named_parameters()})
    for name, grad in model.named_gradients():
        torch.testing.assert_close(grad, torch_grads[name], rtol=1e-5, atol=1e-6, msg=f"d{name} is not torch's")
    assert len(dict(model.named_gradients())) == len(torch_grads) == 6, "RNN and head: six parameters"


def test_script_prints_the_table(tmp_path):
    make_dataset(tmp_path / "mnist", n_train=70, n_test=12)
    env = dict(os.environ, MNIST_DATA_ROOT=str(tmp_path), OMP_NUM_THREADS="1", PYTHONPATH=str(ROOT))
    done = subprocess.run([sys.executable, str(SCRIPT)], cwd=ROOT, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr[-2000:]
    rows = [line.strip("|").split("|") for line in done.stdout.splitlines()[2:]]
    assert [r[0].strip() for r in rows] == ["RNN, at initialization", "LSTM, at initialization",
                                           "RNN, trained", "LSTM, trained"]
    assert all(r[1].strip() == "1" for r in rows), "a unit gradient is put on h_28"
    assert all(r[-1].strip().endswith("%") for r in rows[2:]), "trained rows give a test accuracy"
