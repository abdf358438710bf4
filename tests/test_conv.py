"""Conv2d, MaxPool2d, AvgPool2d, BatchNorm2d and the CNN: what the op table does not see.

    pytest tests/test_conv.py tests/test_ops.py -k "conv or pool or batchnorm2d or cnn" -q

Every layer's gradients (finite differences and torch.autograd), forward pass, dtypes, layouts and documented
errors are checked by the tests generated from tests/ops.py. Here: every arrangement of the conv's sums (whole
windows or strips, col2im or the rotated kernel, in chunks of rows or all at once), its skipped input gradient,
max pooling's ties, batch norm's running statistics, the initialisation, the loop reference of
tests/conv_reference.py, whole LeNet-5 networks.
"""

from __future__ import annotations

import pytest
import torch
from conv_reference import conv2d_loops, conv2d_loops_backward
from op_kinds import Case, assert_finite_differences, assert_matches_twin
from ops import OPS, OPS_BY_NAME, random_affine
from torch import nn
from twins import copy_state

import scratch
import scratch.conv
import torch_impl
from compare.base.agreement import AUTOGRAD_FLOAT64, Tolerance, assert_agree, gradient_tolerance

# The loops and scratch.Conv2d (whole windows or strips) compute the same sums in other orders (measured: ~1e-16).
LOOPS_VS_IM2COL_FLOAT64 = Tolerance("loops-vs-im2col-float64", rtol=1e-12)
CONVS = [op for op in OPS if op.name.startswith("conv-")]


# The arrangements of Conv2d's sums (scratch/conv.py): (LOWERING, INPUT_GRADIENT) forced on the CPU.
ARRANGEMENTS = {"windows-col2im": ("windows", "col2im"), "windows-rotated": ("windows", "rotated"),
                "strips": ("strips", "col2im")}


@pytest.mark.parametrize("op", CONVS, ids=lambda op: op.name)
@pytest.mark.parametrize("arrangement", ARRANGEMENTS)
@pytest.mark.parametrize("chunk_bytes", [1, None], ids=["one-row-per-chunk", "all-rows-at-once"])
def test_every_arrangement_of_the_conv(op, arrangement, chunk_bytes, monkeypatch):
    """Whole windows with col2im or the rotated kernel (CUDA's), and strips (stride 1), each in chunks of one output
    row and with all rows in one product (as on CUDA): the same values and gradients as torch's."""
    lowering, input_gradient = ARRANGEMENTS[arrangement]
    monkeypatch.setitem(scratch.conv.LOWERING, "cpu", lowering)
    monkeypatch.setitem(scratch.conv.INPUT_GRADIENT, "cpu", input_gradient)
    monkeypatch.setitem(scratch.conv.CHUNK_BYTES, "cpu", chunk_bytes)
    case = Case(op, op.samples[0], torch.float64, seed=2)
    x, dout, layer = case.inputs[0], case.douts[0], case.model
    assert layer.uses_strips(x.device) == (arrangement == "strips" and layer.stride == 1)
    assert len(layer.chunks(dout.shape[2], dout.shape[3], x.shape[0], x)) == (dout.shape[2] if chunk_bytes else 1)
    assert_matches_twin(case)
    assert_finite_differences(case)


def test_conv_without_input_gradient():
    op = OPS_BY_NAME["conv-3x3-stride-2-pad-1"]
    case = Case(op, op.samples[0], torch.float64)
    layer, (x,), (dout,) = case.model, case.inputs, case.douts
    layer.forward(x)
    assert layer.backward(dout, input_grad=False) is None
    theirs = case.theirs().grads
    assert_agree("dweight", layer.dweight, theirs["weight"], AUTOGRAD_FLOAT64)
    assert_agree("dbias", layer.dbias, theirs["bias"], AUTOGRAD_FLOAT64)


@pytest.mark.parametrize("args", [(1, 6, 5), (6, 16, 5), (3, 8, 3), (4, 2, 2)])
@pytest.mark.parametrize("bias", [True, False])
def test_conv_init_matches_nn_conv2d_bit_for_bit(args, bias):
    torch.manual_seed(321)
    ours = scratch.Conv2d(*args, bias=bias)
    torch.manual_seed(321)
    theirs = nn.Conv2d(*args, bias=bias)
    assert ours.weight.dtype == torch.float32 and torch.equal(ours.weight, theirs.weight.detach())
    assert (ours.bias is None) == (theirs.bias is None)
    if bias:
        assert torch.equal(ours.bias, theirs.bias.detach())
    torch.manual_seed(321)
    scratch.Conv2d(*args, bias=bias)
    after_ours = torch.rand(4)
    torch.manual_seed(321)
    nn.Conv2d(*args, bias=bias)
    assert torch.equal(after_ours, torch.rand(4)), "both must draw the same number of random values"


# --- max pooling's ties ---------------------------------------------------------------------


def torch_max_pool_gradient(x: torch.Tensor, dout: torch.Tensor, kernel: int, stride: int) -> torch.Tensor:
    x = x.clone().requires_grad_(True)
    (nn.MaxPool2d(kernel, stride)(x) * dout).sum().backward()
    return x.grad


@pytest.mark.parametrize("kernel,stride", [(2, 2), (3, 2), (3, 1)])
def test_maxpool_ties_go_where_torchs_go(kernel, stride):
    """All-equal inputs, and small integers (many ties): the same gradient as torch.

    A tie sent to another pixel would move a whole dout entry; overlapping windows (stride < kernel)
    may sum a pixel's entries in another order, hence a float64 tolerance rather than equality."""
    g = torch.Generator().manual_seed(3)
    for x in (torch.ones(2, 3, 7, 8, dtype=torch.float64),
              torch.randint(0, 3, (2, 3, 7, 8), generator=g).double()):
        pool = scratch.MaxPool2d(kernel, stride)
        out = pool.forward(x)
        dout = torch.randn(out.shape, generator=g, dtype=torch.float64)
        assert torch.equal(out, nn.MaxPool2d(kernel, stride)(x))
        assert_agree("dx", pool.backward(dout), torch_max_pool_gradient(x, dout, kernel, stride), AUTOGRAD_FLOAT64)


def test_maxpool_tie_goes_to_the_first_maximum_in_row_major_order():
    """Torch's CPU kernel, seen on an all-equal input: every window's gradient lands on its top-left pixel."""
    x = torch.ones(1, 1, 4, 4)
    dout = torch.tensor([[[[1.0, 2.0], [3.0, 4.0]]]])
    expected = torch.tensor([[[[1.0, 0, 2, 0], [0, 0, 0, 0], [3, 0, 4, 0], [0, 0, 0, 0]]]])
    assert torch.equal(torch_max_pool_gradient(x, dout, 2, 2), expected)
    pool = scratch.MaxPool2d(2)
    pool.forward(x)
    assert torch.equal(pool.backward(dout), expected)
    # A tie between the second and third pixel of a window (row-major): the second wins.
    pool.forward(torch.tensor([[[[0.0, 5.0], [5.0, 1.0]]]]))
    assert pool.backward(torch.ones(1, 1, 1, 1)).flatten().tolist() == [0.0, 1.0, 0.0, 0.0]


# --- batch norm 2d ---------------------------------------------------------------------------


def test_batchnorm2d_running_statistics_over_many_batches():
    """Five training batches update the running estimates as torch does; evaluation then uses them."""
    for dtype in (torch.float64, torch.float32):
        tol = gradient_tolerance(dtype)
        layer = random_affine(scratch.BatchNorm2d(4)).to(dtype=dtype)
        module = copy_state(layer, nn.BatchNorm2d(4)).to(dtype)
        for _ in range(5):
            x = torch.randn(3, 4, 5, 6, dtype=dtype) * 3 + 2
            assert_agree("training output", layer.forward(x), module(x).detach(), tol)
        for n, b in module.named_buffers():
            assert_agree(n, dict(layer.named_buffers())[n], b, tol)
        assert layer.num_batches_tracked.item() == 5 and layer.num_batches_tracked.dtype == torch.int64
        layer.eval()
        module.eval()
        x = torch.randn(2, 4, 5, 6, dtype=dtype)
        assert_agree("evaluation output", layer.forward(x), module(x).detach(), tol)
        assert layer.num_batches_tracked.item() == 5  # evaluation updates nothing


def test_batchnorm2d_statistics_pool_batch_and_positions():
    """Per channel, over n = B*H*W values: the running variance divides by n - 1, the normalization by n."""
    layer = scratch.BatchNorm2d(2, momentum=1.0).to(dtype=torch.float64)
    x = torch.tensor([[[[1.0, 3.0]], [[0.0, 0.0]]], [[[5.0, 7.0]], [[2.0, 2.0]]]], dtype=torch.float64)  # 2,2,1,2
    out = layer.forward(x)
    # channel 0 holds 1, 3, 5, 7: mean 4, sum of squares 20, so var 20/4 = 5 and running_var 20/3
    assert layer.running_mean.tolist() == pytest.approx([4.0, 1.0])
    assert layer.running_var.tolist() == pytest.approx([20 / 3, 4 / 3])
    assert out[:, 0].flatten().tolist() == pytest.approx([v / (5 + 1e-5) ** 0.5 for v in (-3, -1, 1, 3)])


# --- the loop reference ---------------------------------------------------------------------


@pytest.mark.parametrize("c_in,c_out,k,stride,padding,size,bias", [
    (1, 2, 3, 1, 1, (5, 6), True),
    (2, 3, 3, 2, 1, (7, 6), True),
    (3, 2, 2, 1, 0, (4, 5), False),
    (2, 2, 5, 1, 2, (6, 6), True),
])
@pytest.mark.parametrize("lowering", ["windows", "strips"])
def test_im2col_equals_the_loops(c_in, c_out, k, stride, padding, size, bias, lowering, monkeypatch):
    monkeypatch.setitem(scratch.conv.LOWERING, "cpu", lowering)  # strips for stride 1 only: else whole windows
    torch.manual_seed(0)
    layer = scratch.Conv2d(c_in, c_out, k, stride, padding, bias=bias).to(dtype=torch.float64)
    x = torch.randn(3, c_in, *size, dtype=torch.float64)
    out = layer.forward(x)
    dout = torch.randn(out.shape, dtype=torch.float64)
    dx = layer.backward(dout)
    tol = LOOPS_VS_IM2COL_FLOAT64
    assert_agree("forward", out, conv2d_loops(x, layer.weight, layer.bias, stride, padding), tol)
    dx_loops, dweight_loops, dbias_loops = conv2d_loops_backward(x, layer.weight, dout, stride, padding)
    assert_agree("dx", dx, dx_loops, tol)
    assert_agree("dweight", layer.dweight, dweight_loops, tol)
    if bias:
        assert_agree("dbias", layer.dbias, dbias_loops, tol)


# --- max pooling before ReLU -----------------------------------------------------------------


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("batch_norm", [False, True], ids=["lenet", "batch-norm"])
@pytest.mark.parametrize("values", ["normal", "small-integers"])
def test_pooling_before_relu_gives_the_same_numbers_bit_for_bit(dtype, batch_norm, values, monkeypatch):
    """scratch.CNN applies max pooling before ReLU (they commute); against the same network applied in torch's
    order (ReLU, then pooling): the same logits and every gradient bit for bit, also with exact ties (small
    integers in the images and weights make equal maxima, and windows whose maximum is 0 or below)."""
    def network(pool_first: bool) -> scratch.CNN:
        monkeypatch.setattr(scratch.cnn, "POOL_FIRST", {("max", "relu")} if pool_first else set())
        torch.manual_seed(0)
        model = scratch.CNN(batch_norm=batch_norm).to(dtype=dtype)
        if values == "small-integers":
            g = torch.Generator().manual_seed(1)
            for p in model.parameters():
                p.copy_(torch.randint(-2, 3, p.shape, generator=g).to(dtype) / 4)
        return model

    ours, theirs = network(True), network(False)
    assert ours.plan[1 + batch_norm] == (1 + batch_norm, 2 + batch_norm)  # ReLU and pooling: pooling first
    assert all(isinstance(step, int) for step in theirs.plan)  # every layer in its order
    g = torch.Generator().manual_seed(2)
    x = torch.randn(6, 784, generator=g, dtype=dtype)
    if values == "small-integers":
        x = torch.randint(-1, 2, (6, 784), generator=g).to(dtype)
    dlogits = torch.randn(6, 10, generator=g, dtype=dtype)
    assert torch.equal(ours.forward(x), theirs.forward(x))
    ours.backward(dlogits, input_grad=False)
    theirs.backward(dlogits, input_grad=False)
    for (name, a), (_, b) in zip(ours.named_gradients(), theirs.named_gradients(), strict=True):
        assert torch.equal(a, b), name
    for a, b in zip(ours.feature_maps(x), theirs.feature_maps(x), strict=True):
        assert torch.equal(a, b)  # the pictures' maps: taken after the activation, before pooling, in both


# --- the whole network ----------------------------------------------------------------------

SPECS = {
    "lenet": {},
    "batch-norm": dict(batch_norm=True),
    "avg-pool": dict(pool="avg"),
    "small-tanh": dict(image_size=12, channels=(3, 4, 5), kernel_size=3, padding=1, fc_sizes=(7,),
                       activation="tanh", in_channels=2, num_classes=4),
}


def pair(spec: dict, dtype: torch.dtype = torch.float64):
    torch.manual_seed(0)
    ours = scratch.CNN(**spec)
    torch.manual_seed(0)
    theirs = torch_impl.CNN(**spec)
    names = [n for n, _ in ours.named_parameters()]
    assert names == [n for n, _ in theirs.named_parameters()]
    assert [n for n, _ in ours.named_buffers()] == [n for n, _ in theirs.named_buffers()]
    for (name, a), (_, b) in zip(ours.named_parameters(), theirs.named_parameters(), strict=True):
        assert torch.equal(a, b.detach()), f"{name}: initial values differ"
    return ours.to(dtype=dtype), theirs.to(dtype)


def images(spec: dict, batch: int = 4, dtype: torch.dtype = torch.float64) -> torch.Tensor:
    size, channels = spec.get("image_size", 28), spec.get("in_channels", 1)
    return torch.randn(batch, channels, size, size, generator=torch.Generator().manual_seed(9), dtype=dtype)


@pytest.mark.parametrize("training", [True, False], ids=["train", "eval"])
@pytest.mark.parametrize("name", SPECS)
def test_cnn_matches_torch(name, training):
    spec = SPECS[name]
    ours, theirs = pair(spec)
    ours.train(training)
    theirs.train(training)
    x = images(spec)
    x_torch = x.clone().requires_grad_(True)
    logits = theirs(x_torch)
    dlogits = torch.randn(logits.shape, generator=torch.Generator().manual_seed(10), dtype=torch.float64)
    (logits * dlogits).sum().backward()
    tol = AUTOGRAD_FLOAT64
    assert_agree("logits", ours.forward(x), logits.detach(), tol)
    assert_agree("dx", ours.backward(dlogits), x_torch.grad, tol)
    for (n, g), (_, p) in zip(ours.named_gradients(), theirs.named_parameters(), strict=True):
        assert_agree(f"d{n}", g, p.grad, tol)
    for (n, b), (_, bt) in zip(ours.named_buffers(), theirs.named_buffers(), strict=True):
        assert_agree(n, b, bt, tol)


def test_cnn_takes_flattened_images_and_skips_the_input_gradient():
    ours, theirs = pair({})
    x = images({})
    dlogits = torch.randn(4, 10, dtype=torch.float64)
    ours.forward(x)
    dx = ours.backward(dlogits)
    grads = [g.clone() for g in ours.gradients()]
    flat = x.reshape(4, 784)
    assert_agree("logits from [B, 784]", ours.forward(flat), theirs(flat).detach(), AUTOGRAD_FLOAT64)
    assert ours.backward(dlogits, input_grad=False) is None
    for g, again in zip(grads, ours.gradients(), strict=True):
        assert torch.equal(g, again)
    ours.forward(flat)
    assert torch.equal(ours.backward(dlogits), dx.reshape(4, 784))  # dx in the shape x came in


def test_default_cnn_is_lenet5():
    model = scratch.CNN()
    shapes = [(n, tuple(p.shape)) for n, p in model.named_parameters()]
    assert shapes == [("layers.0.weight", (6, 1, 5, 5)), ("layers.0.bias", (6,)),
                      ("layers.3.weight", (16, 6, 5, 5)), ("layers.3.bias", (16,)),
                      ("layers.7.weight", (120, 400)), ("layers.7.bias", (120,)),
                      ("layers.9.weight", (84, 120)), ("layers.9.bias", (84,)),
                      ("layers.11.weight", (10, 84)), ("layers.11.bias", (10,))]
    assert [type(layer).__name__ for layer in model.layers.layers] == [
        "Conv2d", "ReLU", "MaxPool2d", "Conv2d", "ReLU", "MaxPool2d", "Flatten",
        "Linear", "ReLU", "Linear", "ReLU", "Linear"]
    assert model.plan[:4] == [0, (1, 2), 3, (4, 5)]  # each ReLU and its max pooling applied pooling first
    assert scratch.CNN(activation="tanh").plan == list(range(12))  # in their order where they do not commute
    assert sum(p.numel() for p in model.parameters()) == 61_706  # LeNet-5's count, with padding 2 on 28x28
    batch_norm = scratch.CNN(batch_norm=True)
    assert batch_norm.layers[0].bias is None and isinstance(batch_norm.layers[1], scratch.BatchNorm2d)


@pytest.mark.parametrize("spec", [{}, dict(batch_norm=True)], ids=["lenet", "batch-norm"])
def test_state_dicts_copy_across(spec):
    ours, theirs = pair(spec, torch.float32)
    with torch.no_grad():
        for t in [*theirs.parameters(), *theirs.buffers()]:
            t.add_(1)  # now different from ours
    ours.load_state_dict(theirs.state_dict())  # parameters and buffers (running statistics), torch's keys
    for (n, a), (_, b) in zip(ours.state_dict().items(), theirs.state_dict().items(), strict=True):
        assert torch.equal(a, b.detach()), n
    fresh = torch_impl.CNN(**spec)
    fresh.load_state_dict(ours.state_dict())  # strict: every key present
    for (n, a), (_, b) in zip(ours.state_dict().items(), fresh.state_dict().items(), strict=True):
        assert torch.equal(a, b.detach()), n


@pytest.mark.parametrize("name", ["batch-norm", "small-tanh"])
def test_feature_maps(name):
    spec = SPECS[name]
    ours, theirs = pair(spec)
    x = images(spec)
    maps = ours.feature_maps(x)
    expected = theirs.feature_maps(x)
    channels = spec.get("channels", (6, 16))
    assert [m.shape[1] for m in maps] == list(channels)
    for k, (a, b) in enumerate(zip(maps, expected, strict=True)):
        assert_agree(f"stage {k + 1} feature maps", a, b, AUTOGRAD_FLOAT64)
    assert ours.training and theirs.training  # training mode restored
    assert all(b.sum() == 0 for n, b in ours.named_buffers() if n.endswith("num_batches_tracked"))  # eval mode used
    assert maps[0].shape == (4, channels[0], spec.get("image_size", 28), spec.get("image_size", 28))


def test_cnn_errors_are_for_people():
    with pytest.raises(ValueError, match=r"conv stage 2 \(5x5 kernel, padding 0\) gets 4x4 feature maps and would "
                                         r"leave 0x0"):
        scratch.CNN(image_size=8)
    with pytest.raises(ValueError, match=r"conv stage 3 .* gets 5x5 feature maps and would leave 1x1"):
        torch_impl.CNN(channels=(6, 16, 32), padding=(2, 0, 0))
    with pytest.raises(ValueError, match="padding .* has 2 entries for 3 conv stages"):
        scratch.CNN(channels=(4, 8, 16))
    with pytest.raises(ValueError, match="unknown pool 'min'"):
        scratch.CNN(pool="min")
    with pytest.raises(ValueError, match="unknown activation"):
        torch_impl.CNN(activation="swish")
    with pytest.raises(ValueError, match="channels must be one positive int per conv stage"):
        scratch.CNN(channels=())
    for model in (scratch.CNN(), torch_impl.CNN()):
        with pytest.raises(ValueError, match=r"expects images of shape \[batch, 1, 28, 28\] .*\[batch, 784\]"):
            model.forward(torch.zeros(2, 3, 28, 28))
