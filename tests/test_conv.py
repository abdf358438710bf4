"""Conv2d, MaxPool2d, AvgPool2d, BatchNorm2d, Flatten and the CNN against torch.nn and finite differences.

    pytest tests/test_conv.py -q

The checks of tests/layer_check.py (random upstream gradient dout through sum(out * dout); scratch vs
torch.autograd in float64 and float32; scratch vs central differences at every coordinate in float64),
applied to each line of LAYERS; then what they do not see: max pooling's ties, batch norm's running
statistics, the initialisation, the loop reference of tests/conv_reference.py, whole networks.
"""

from __future__ import annotations

import pytest
import torch
from conv_reference import conv2d_loops, conv2d_loops_backward
from layer_check import away_from_zero, check_against_autograd, check_finite_differences, copy_state
from torch import nn

import scratch
import scratch.conv
import torch_impl
from compare.base.agreement import AUTOGRAD_FLOAT64, Tolerance, assert_agree, gradient_tolerance

# The loops and im2col compute the same sums in different orders (measured: ~1e-16 relative).
LOOPS_VS_IM2COL_FLOAT64 = Tolerance("loops-vs-im2col-float64", rtol=1e-12)


def random_affine(layer: scratch.BatchNorm2d) -> scratch.BatchNorm2d:
    """Move batch norm off its initial weight 1, bias 0 (which would hide a swapped weight and bias)."""
    g = torch.Generator().manual_seed(5)
    layer.weight.uniform_(0.5, 1.5, generator=g)
    layer.bias.uniform_(-0.5, 0.5, generator=g)
    return layer


def trained_statistics(layer: scratch.BatchNorm2d) -> scratch.BatchNorm2d:
    """Batch norm in evaluation mode with running statistics that are not the initial 0 and 1."""
    g = torch.Generator().manual_seed(6)
    layer.running_mean.uniform_(-1, 1, generator=g)
    layer.running_var.uniform_(0.5, 2, generator=g)
    return random_affine(layer)


def conv(*args, **kwargs):
    """A scratch Conv2d and a factory for its twin nn.Conv2d with the same arguments and values."""
    return (lambda: scratch.Conv2d(*args, **kwargs)), (lambda s: copy_state(s, nn.Conv2d(*args, **kwargs)))


# name: (scratch factory, torch factory taking the scratch layer, input shape, training mode)
LAYERS = {
    "conv-5x5-pad-2": (*conv(2, 3, 5, padding=2), (2, 2, 7, 6), True),
    "conv-3x3-stride-2-pad-1": (*conv(3, 4, 3, stride=2, padding=1), (2, 3, 7, 8), True),
    "conv-no-bias": (*conv(2, 3, 3, bias=False), (3, 2, 5, 6), True),
    "conv-2x2-stride-3": (*conv(2, 2, 2, stride=3), (2, 2, 8, 7), True),  # gaps between windows, rows left over
    "conv-1x1": (*conv(3, 2, 1), (2, 3, 4, 5), True),
    "maxpool-2": (lambda: scratch.MaxPool2d(2), lambda s: nn.MaxPool2d(2), (2, 3, 6, 8), True),
    "maxpool-2-odd-sides": (lambda: scratch.MaxPool2d(2), lambda s: nn.MaxPool2d(2), (2, 2, 5, 7), True),
    "maxpool-3-stride-2": (lambda: scratch.MaxPool2d(3, 2), lambda s: nn.MaxPool2d(3, 2), (2, 2, 7, 9), True),
    "avgpool-2": (lambda: scratch.AvgPool2d(2), lambda s: nn.AvgPool2d(2), (2, 3, 6, 8), True),
    "avgpool-2-odd-sides": (lambda: scratch.AvgPool2d(2), lambda s: nn.AvgPool2d(2), (2, 2, 5, 7), True),
    "avgpool-3-stride-2": (lambda: scratch.AvgPool2d(3, 2), lambda s: nn.AvgPool2d(3, 2), (2, 2, 7, 9), True),
    "batchnorm2d-train": (lambda: random_affine(scratch.BatchNorm2d(3)),
                          lambda s: copy_state(s, nn.BatchNorm2d(3)), (4, 3, 3, 5), True),
    "batchnorm2d-train-eps-momentum": (lambda: random_affine(scratch.BatchNorm2d(2, eps=1e-3, momentum=0.3)),
                                       lambda s: copy_state(s, nn.BatchNorm2d(2, eps=1e-3, momentum=0.3)),
                                       (3, 2, 4, 3), True),
    "batchnorm2d-train-batch-1": (lambda: random_affine(scratch.BatchNorm2d(2)),
                                  lambda s: copy_state(s, nn.BatchNorm2d(2)), (1, 2, 3, 4), True),
    "batchnorm2d-eval": (lambda: trained_statistics(scratch.BatchNorm2d(3)),
                         lambda s: copy_state(s, nn.BatchNorm2d(3)), (4, 3, 3, 5), False),
    "flatten": (scratch.Flatten, lambda s: nn.Flatten(), (3, 2, 4, 5), True),
}


def make(name: str, dtype: torch.dtype, seed: int = 0):
    torch.manual_seed(seed)
    make_scratch, make_torch, shape, training = LAYERS[name]
    x = away_from_zero(shape, dtype) * 2 + 0.5  # batch norm should have a mean and scale to remove
    layer = make_scratch().to(dtype=dtype).train(training)
    dout = torch.randn(layer.forward(x).shape, dtype=dtype)
    layer = make_scratch().to(dtype=dtype).train(training)  # afresh: that forward moved the running statistics
    module = make_torch(layer).to(dtype=dtype).train(training)
    return layer, module, x, dout


@pytest.mark.parametrize("name", LAYERS)
def test_finite_differences_float64(name):
    layer, _, x, dout = make(name, torch.float64)
    check_finite_differences(layer, x, dout)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32], ids=["float64", "float32"])
@pytest.mark.parametrize("name", LAYERS)
def test_matches_autograd(name, dtype):
    layer, module, x, dout = make(name, dtype, seed=1)
    check_against_autograd(layer, module, x, dout)
    buffers = dict(layer.named_buffers())
    assert set(buffers) == {n for n, _ in module.named_buffers()}
    for n, b in module.named_buffers():  # batch norm's running statistics after that forward
        assert_agree(n, buffers[n], b, gradient_tolerance(dtype))


@pytest.mark.parametrize("name", [n for n in LAYERS if n.startswith("conv")])
def test_conv_in_many_batch_slices(name, monkeypatch):
    """The batch is convolved in slices (scratch/conv.py, SLICE_BYTES); here one example per slice."""
    monkeypatch.setattr(scratch.conv, "SLICE_BYTES", 1)
    layer, module, x, dout = make(name, torch.float64, seed=2)
    assert len(layer.slices(x, *dout.shape[2:])) == x.shape[0] > 1
    check_against_autograd(layer, module, x, dout)
    check_finite_differences(layer, x, dout)


def test_conv_without_input_gradient():
    layer, module, x, dout = make("conv-3x3-stride-2-pad-1", torch.float64)
    layer.forward(x)
    assert layer.backward(dout, input_grad=False) is None
    x = x.clone().requires_grad_(True)
    (module(x) * dout).sum().backward()
    assert_agree("dweight", layer.dweight, module.weight.grad, AUTOGRAD_FLOAT64)
    assert_agree("dbias", layer.dbias, module.bias.grad, AUTOGRAD_FLOAT64)


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


def test_batchnorm_errors_are_for_people():
    with pytest.raises(ValueError, match=r"expects input of shape \[batch, 3, height, width\], got \[2, 3\]"):
        scratch.BatchNorm2d(3).forward(torch.zeros(2, 3))
    with pytest.raises(ValueError, match="at least 2 values per feature"):
        scratch.BatchNorm2d(3).forward(torch.zeros(1, 3, 1, 1))
    assert scratch.BatchNorm2d(3).forward(torch.randn(1, 3, 2, 1)).shape == (1, 3, 2, 1)  # one example, 2 values


# --- the loop reference ---------------------------------------------------------------------


@pytest.mark.parametrize("c_in,c_out,k,stride,padding,size,bias", [
    (1, 2, 3, 1, 1, (5, 6), True),
    (2, 3, 3, 2, 1, (7, 6), True),
    (3, 2, 2, 1, 0, (4, 5), False),
    (2, 2, 5, 1, 2, (6, 6), True),
])
def test_im2col_equals_the_loops(c_in, c_out, k, stride, padding, size, bias):
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


# --- errors ---------------------------------------------------------------------------------


def test_conv_and_pool_errors_are_for_people():
    with pytest.raises(ValueError, match=r"expects input of shape \[batch, 3, height, width\], got \[2, 1, 5, 5\]"):
        scratch.Conv2d(3, 4, 3).forward(torch.zeros(2, 1, 5, 5))
    with pytest.raises(ValueError, match="smaller than the 5x5 kernel"):
        scratch.Conv2d(1, 4, 5).forward(torch.zeros(2, 1, 3, 3))
    with pytest.raises(ValueError, match="kernel_size must be an int >= 1"):
        scratch.Conv2d(1, 4, (3, 5))
    with pytest.raises(ValueError, match="padding=0 and ceil_mode=False only"):
        scratch.MaxPool2d(2, padding=1)
    with pytest.raises(ValueError, match="dilation=1 only"):
        scratch.MaxPool2d(2, dilation=2)
    with pytest.raises(ValueError, match="smaller than the 3x3 window"):
        scratch.AvgPool2d(3).forward(torch.zeros(1, 1, 2, 5))
    for layer in (scratch.Conv2d(1, 1, 1), scratch.MaxPool2d(2), scratch.AvgPool2d(2), scratch.Flatten()):
        with pytest.raises(RuntimeError, match="before forward"):
            layer.backward(torch.zeros(1, 1, 1, 1))


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
