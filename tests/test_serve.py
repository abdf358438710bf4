"""The digit page: MNIST-style preprocessing, the prediction core, the web app's answers to bad uploads, a bounded
load test on a real server, and the page in a real browser (headless Chromium driven by selenium).

Servers bind 127.0.0.1 on a free port and stop at the end of the test. The browser test skips with the reason
where Chromium or chromedriver is missing (`apt-get install chromium chromium-driver`); it saves a screenshot
into $SCREENSHOT_DIR as page.png (default: the test's temporary folder; `make screenshot`: docs/pictures/serve).
"""

from __future__ import annotations

import asyncio
import io
import os
import socket
import time
from pathlib import Path

import pytest
import torch
import web_helpers
from conftest import DATA_ROOT
from web_helpers import LocalServer

from compare.data.digits import EmptyDrawingError, mnist_style
from compare.training.config import Config
from compare.training.diagnostics import hidden_activations
from compare.training.learners import build_pair
from compare.training.loop import evaluate, train_lockstep
from compare.training.metrics import accuracy
from compare.web.predict import DigitReader

fastapi = pytest.importorskip("fastapi", reason="the serve extra is not installed: pip install -e '.[serve]'")
Image = pytest.importorskip("PIL.Image", reason="the serve extra is not installed: pip install -e '.[serve]'")
from fastapi.testclient import TestClient  # noqa: E402 (after the skip above)

from compare.web.app import MAX_UPLOAD_BYTES, create_app  # noqa: E402

MEAN, STD = 0.1307, 0.3081


@pytest.fixture(scope="module")
def reader() -> DigitReader:
    """The lesson's network in float64, trained one epoch on 6,000 real digits when they are here (else untrained)."""
    config = Config(dtype="float64", epochs=1)
    learners = build_pair(config)
    source, accuracies = "untrained", {"scratch": 0.0, "torch": 0.0}
    if DATA_ROOT is not None:
        from compare.data.mnist import load_dataset

        data = load_dataset("mnist", DATA_ROOT, dtype=torch.float64, download=False)
        train_lockstep(learners, data.x_train[:6000], data.y_train[:6000], data.x_test[:500], data.y_test[:500],
                       epochs=1, batch_size=32, seed=0, progress=False)
        source = "trained 1 epoch on 6,000 MNIST digits"
        accuracies = {learner.name: accuracy(evaluate(learner, data.x_test, data.y_test)[1], data.y_test)
                      for learner in learners}
    return DigitReader(learners, MEAN, STD, [str(i) for i in range(10)], "784-16-16-10 relu, float64", source,
                       accuracies)


def png(pixels: torch.Tensor) -> bytes:
    """[H, W] grey levels 0..255 -> PNG bytes."""
    out = io.BytesIO()
    Image.fromarray(pixels.to(torch.uint8).numpy(), mode="L").save(out, format="PNG")
    return out.getvalue()


def stroke(size: int = 280) -> torch.Tensor:
    """A white vertical bar on black, like a '1' drawn on the canvas, off centre and small."""
    canvas = torch.zeros(size, size)
    canvas[40:140, 30:45] = 255
    return canvas


# --- the MNIST-style input ------------------------------------------------------------------------

def test_mnist_style_fits_20x20_and_centres_by_mass():
    x = mnist_style(stroke() / 255)
    rows, cols = torch.nonzero(x > 0.1, as_tuple=True)
    assert x.shape == (28, 28) and 0 <= x.min() and x.max() <= 1
    assert rows.max() - rows.min() + 1 == 20, "the longer side must fill the 20-pixel box"
    ys, xs = torch.arange(28, dtype=torch.float64), torch.arange(28, dtype=torch.float64)
    cy, cx = (x.sum(1) @ ys) / x.sum(), (x.sum(0) @ xs) / x.sum()
    assert abs(cy - 14) <= 0.5 and abs(cx - 14) <= 0.5, (cy, cx)


def test_mnist_style_keeps_mnist_digits_as_they_are(mnist64):
    """MNIST's own digits were made this way: preprocessing them again leaves most exactly as they are (a few
    move by a pixel, where rounding the centre of mass goes the other way)."""
    correlations = []
    for image in mnist64.x_test[:50]:
        original = (image * mnist64.std + mnist64.mean).reshape(28, 28)
        again = mnist_style(original)
        correlations.append(torch.corrcoef(torch.stack([original.flatten(), again.flatten()]))[0, 1].item())
    assert sorted(correlations)[25] > 0.999 and min(correlations) > 0.6, correlations


def test_empty_drawing_is_refused():
    with pytest.raises(EmptyDrawingError, match="no digit"):
        mnist_style(torch.zeros(50, 50))


# --- the prediction core ---------------------------------------------------------------------------

def test_reader_matches_the_models_and_both_sides_agree(reader):
    image = mnist_style(stroke() / 255)
    result = reader.read(image)
    x = ((image.reshape(1, 784) - MEAN) / STD)
    for learner in reader.learners:
        expected = torch.softmax(learner.logits(x)[0], dim=0)
        assert torch.equal(torch.tensor(result[learner.name]["probabilities"], dtype=torch.float64), expected)
        assert [h["layer"] for h in result[learner.name]["hidden"]] == ["layers.1", "layers.3"]
        assert result[learner.name]["predicted"] == int(expected.argmax())
    assert result["agree"] and result["max_difference"] < 1e-12


def test_hidden_activations_are_the_relu_outputs(reader):
    x = torch.randn(3, 784, dtype=torch.float64)
    scratch_l, torch_l = reader.learners
    names = [n for n, _, _ in hidden_activations(torch_l, x)]
    assert names == ["layers.1", "layers.3"]
    first = torch_l.model.layers[0](x).clamp(min=0)
    assert torch.allclose(hidden_activations(scratch_l, x)[0][2], first, atol=1e-12)


def untrained_reader(dtype: str = "float32", **model) -> DigitReader:
    """Both sides built from one seed (so with the same weights) of a model spec, untrained."""
    from compare.models import make_spec

    config = Config(dtype=dtype, model=make_spec(model.pop("family", "mlp"), **model))
    learners = build_pair(config)
    return DigitReader(learners, MEAN, STD, [str(i) for i in range(10)], "a test network", "untrained",
                       {"scratch": 0.0, "torch": 0.0})


@pytest.mark.parametrize("model,labels,shapes", [
    ({"hidden": (8, 5)}, ["hidden layer 1, 8 neurons (ReLU)", "hidden layer 2, 5 neurons (ReLU)"], [[8], [5]]),
    ({"hidden": (12,), "activation": "tanh"}, ["hidden layer 1, 12 neurons (Tanh)"], [[12]]),
    ({"family": "cnn"}, ["hidden layer 1, convolution: 6 channels of 28x28 (ReLU)",
                         "hidden layer 2, convolution: 16 channels of 10x10 (ReLU)",
                         "hidden layer 3, 120 neurons (ReLU)", "hidden layer 4, 84 neurons (ReLU)"],
     [[6, 28, 28], [16, 10, 10], [120], [84]]),
    ({"family": "vit"}, [], []),
], ids=["mlp-8-5", "mlp-tanh", "cnn", "vit"])
def test_hidden_layers_have_plain_names_from_the_model(model, labels, shapes):
    reader = untrained_reader(**model)
    result = reader.read(mnist_style(stroke() / 255))
    for side in ("scratch", "torch"):
        assert [h["label"] for h in result[side]["hidden"]] == labels
        assert [h["shape"] for h in result[side]["hidden"]] == shapes
        assert all(len(h["values"]) == torch.tensor(h["shape"]).prod() for h in result[side]["hidden"])
    assert reader.info()["output_layer"].startswith("output layer, 10 neurons")


@pytest.mark.parametrize("dtype,rounding", [("float32", "1e-7"), ("float64", "1e-16")])
def test_the_difference_is_explained_by_whether_the_weights_are_the_same(dtype, rounding):
    same = untrained_reader(dtype).info()["difference"]
    assert same["case"] == "same weights" and same["weights_difference"] == 0 and same["dtype"] == dtype
    assert f"rounding alone (at most about {rounding} in {dtype})" in same["explanation"]
    reader = untrained_reader(dtype)
    with torch.no_grad():
        reader.learners[1].named_parameters()["layers.0.weight"][0, 0] += 0.25  # as if trained separately
    apart = DigitReader(reader.learners, MEAN, STD, reader.classes, "", "", reader.accuracies).info()["difference"]
    assert apart["case"] == "trained separately" and apart["weights_difference"] == pytest.approx(0.25)
    assert "trained separately" in apart["explanation"] and "2.5e-01" in apart["explanation"]
    assert ("about 0.5 in some probability is to be expected" in apart["explanation"]) == (dtype == "float32")


# --- the web app -----------------------------------------------------------------------------------

@pytest.fixture(scope="module")
def client(reader):
    return TestClient(create_app(reader))


def test_page_and_info(client, reader):
    assert "<canvas" in client.get("/").text
    info = client.get("/api/info").json()
    assert info["sides"] == ["scratch (hand-written)", "torch"]
    assert info["difference"] == reader.difference_case() and info["difference"]["explanation"]
    assert info["output_layer"].startswith("output layer, 10 neurons")
    answer = client.post("/api/predict", files={"image": ("x.png", png(stroke()), "image/png")}).json()
    assert [h["label"] for h in answer["torch"]["hidden"]] == ["hidden layer 1, 16 neurons (ReLU)",
                                                                "hidden layer 2, 16 neurons (ReLU)"]


@pytest.mark.parametrize("data,status,words", [
    (b"this is not an image", 415, "not an image"),
    (b"", 422, "empty"),
    (b"\x89PNG" + b"0" * (MAX_UPLOAD_BYTES + 10), 413, "larger than"),
    ("5000x5000", 413, "pixels"),  # a small file that decodes to 25 million pixels
], ids=["not-an-image", "empty-file", "huge-file", "huge-image"])
def test_bad_upload_is_a_clear_4xx_and_the_server_keeps_serving(client, data, status, words):
    if data == "5000x5000":
        data = png(torch.zeros(5000, 5000))
    answer = client.post("/api/predict", files={"image": ("x.png", data, "image/png")})
    assert answer.status_code == status and words in answer.json()["detail"], answer.text
    good = client.post("/api/predict", files={"image": ("x.png", png(stroke()), "image/png")})
    assert good.status_code == 200 and good.json()["agree"]


def test_empty_canvas_is_422(client):
    answer = client.post("/api/predict", files={"image": ("x.png", png(torch.zeros(280, 280)), "image/png")})
    assert answer.status_code == 422 and "no digit" in answer.json()["detail"]


def test_photo_of_dark_ink_on_white_paper_is_inverted(client):
    white_paper = 255 - stroke()
    a = client.post("/api/predict", files={"image": ("p.png", png(white_paper), "image/png")}).json()
    b = client.post("/api/predict", files={"image": ("c.png", png(stroke()), "image/png")}).json()
    assert a["input"] == b["input"]


# --- a real server -----------------------------------------------------------------------------------

@pytest.fixture
def server(reader):
    local = LocalServer(create_app(reader))
    yield local
    local.stop()


LOAD_REQUESTS = 300  # bounded: a few hundred predictions from localhost, 50 at a time
LOAD_CONCURRENCY = 50


def test_load_test_loses_no_request_and_every_answer_agrees(server):
    import httpx

    images = [png(torch.roll(stroke(), shifts=(k % 7) * 9, dims=1)) for k in range(LOAD_REQUESTS)]

    async def send_all() -> list:
        limit = asyncio.Semaphore(LOAD_CONCURRENCY)
        async with httpx.AsyncClient(base_url=server.url, timeout=60) as http:
            async def one(data: bytes):
                async with limit:
                    try:
                        return await http.post("/api/predict", files={"image": ("d.png", data, "image/png")})
                    except httpx.HTTPError as error:
                        return error
            return await asyncio.gather(*(one(data) for data in images))

    start = time.perf_counter()
    answers = asyncio.run(send_all())
    seconds = time.perf_counter() - start
    answered = [a for a in answers if isinstance(a, httpx.Response)]
    errors = [a for a in answers if not isinstance(a, httpx.Response) or a.status_code != 200]
    agreeing = [a for a in answered if a.status_code == 200 and a.json()["agree"] and
                a.json()["max_difference"] < 1e-12]
    print(f"\nload test: sent {len(images)}, answered {len(answered)}, errors {len(errors)}, scratch and torch "
          f"agreeing on {len(agreeing)}, {seconds:.1f} s ({len(images) / seconds:.0f} predictions/s)")
    assert len(answered) == len(images) and not errors and len(agreeing) == len(images)


# --- the page in a real browser ------------------------------------------------------------------------

@pytest.fixture
def browser():
    with web_helpers.browser() as driver:
        yield driver


def test_drawing_in_the_browser_gives_the_python_predictions(server, browser, reader, tmp_path):
    from selenium.webdriver.common.action_chains import ActionChains
    from selenium.webdriver.common.by import By
    from selenium.webdriver.support.ui import WebDriverWait

    browser.get(server.url)
    WebDriverWait(browser, 20).until(lambda d: "test accuracy" in d.find_element(By.ID, "info").text)
    pad = browser.find_element(By.ID, "pad")
    # a '7': a bar across the top, then a stroke down to the lower left (offsets from the canvas centre)
    (ActionChains(browser).move_to_element_with_offset(pad, -70, -90).click_and_hold()
     .move_by_offset(70, 0).move_by_offset(70, 0).move_by_offset(-30, 60).move_by_offset(-30, 60)
     .move_by_offset(-25, 55).release().perform())
    WebDriverWait(browser, 20).until(lambda d: d.execute_script("return window.lastResult !== null"))
    shown = browser.execute_script("return window.lastResult")
    expected = reader.read(torch.tensor(shown["input"], dtype=torch.float64))
    assert sum(v > 0 for row in shown["input"] for v in row) > 20, "the stroke did not reach the canvas"
    for side in ("scratch", "torch"):
        on_page = [float(td.get_attribute("data-p"))
                   for td in browser.find_elements(By.CSS_SELECTOR, f"#{side}-probs td[data-p]")]
        assert on_page == expected[side]["probabilities"], side
        assert int(browser.find_element(By.ID, f"{side}-predicted").text) == expected[side]["predicted"]
    assert shown["agree"] and expected["agree"]
    text = browser.find_element(By.TAG_NAME, "body").text
    assert browser.find_element(By.ID, "hint").is_displayed() and "Draw a digit" in text
    assert browser.find_element(By.ID, "legend").is_displayed() and "colour scale" in text
    assert text.count("hidden layer 1, 16 neurons (ReLU)") == 2 and text.count("output layer, 10 neurons") == 2
    assert "layers.1" not in text, "an internal layer name is shown"
    note = browser.find_element(By.ID, "diff-note")
    assert note.is_displayed() and note.text == reader.difference_case()["explanation"]
    folder = Path(os.environ.get("SCREENSHOT_DIR") or tmp_path)
    folder.mkdir(parents=True, exist_ok=True)
    assert browser.save_screenshot(str(folder / "page.png"))
    print(f"\nscreenshot: {folder / 'page.png'}; drawn digit read as {expected['scratch']['predicted']}")


@pytest.mark.slow  # a subprocess that imports torch and trains: 10 to 30 s
def test_serve_command_trains_serves_until_ctrl_c_and_reports(tiny_data_root, tmp_path):
    """`python -m compare serve` without a checkpoint: trains first, serves, and on Ctrl-C prints the counts and
    writes its report (exit status 0)."""
    import signal
    import subprocess
    import sys

    import httpx

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    report = tmp_path / "serve.json"
    root = Path(__file__).resolve().parent.parent
    server = subprocess.Popen(
        [sys.executable, "-m", "compare", "serve", "--data-root", str(tiny_data_root), "--port", str(port),
         "--report", str(report)], cwd=root, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True,
        env={**os.environ, "PYTHONPATH": str(root), "OMP_NUM_THREADS": "1"},
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))  # as a terminal's Ctrl-C would reach it
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                info = httpx.get(f"http://127.0.0.1:{port}/api/info", timeout=2).json()
                break
            except httpx.HTTPError:
                assert time.monotonic() < deadline and server.poll() is None, server.stdout.read()
                time.sleep(0.3)
        answer = httpx.post(f"http://127.0.0.1:{port}/api/predict", files={"image": ("d.png", png(stroke()))})
        assert answer.status_code == 200 and "trained just now" in info["source"]
    finally:
        server.send_signal(signal.SIGINT)
        out, _ = server.communicate(timeout=30)
    assert server.returncode == 0, out
    assert "No --checkpoint: training" in out and "Predictions made: 1" in out
    assert '"predictions": 1' in report.read_text()


def test_serve_on_a_busy_port_is_refused_before_any_training(tiny_data_root, monkeypatch, capsys):
    import compare.commands.serve as serve_command
    from compare.cli import main

    def no_work(*_, **__):
        raise AssertionError("serve trained, loaded or served before it checked the port")

    monkeypatch.setattr(serve_command, "load_dataset", no_work)
    monkeypatch.setattr(serve_command.web, "serve", no_work)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        start = time.monotonic()
        status = main(["serve", "--port", str(port), "--data-root", str(tiny_data_root)])
    err = capsys.readouterr().err.strip()
    assert status == 2 and time.monotonic() - start < 5
    assert len(err.splitlines()) == 1 and f"port {port}" in err and "--port" in err and "in use" in err, err


@pytest.mark.parametrize("side", ["scratch", "torch"])
def test_serve_can_put_one_sides_weights_in_both(tiny_data_root, tmp_path, side, capsys):
    """`serve --weights scratch`: a checkpoint's scratch weights in both implementations, so the difference shown
    is the implementations' alone, and the page says it is rounding."""
    import json

    from compare.cli import main

    common = ["--data-root", str(tiny_data_root), "--hidden", "8", "--batch-size", "20"]
    assert main(["train", *common, "--epochs", "1", "--save", str(tmp_path / "run")]) == 0
    report = tmp_path / "serve.json"
    assert main(["serve", "--checkpoint", str(tmp_path / "run"), "--data-root", str(tiny_data_root), "--dry-run",
                 "--weights", side, "--report", str(report)]) == 0
    info = json.loads(report.read_text())["info"]
    assert info["difference"]["case"] == "same weights" and info["difference"]["weights_difference"] == 0
    assert f"the {side} network's weights in both" in info["source"]
    assert "(same weights)" in capsys.readouterr().out
