"""The vision transformer's layers by hand (LayerNorm, MultiheadAttention, the transformer block, ViT)
against float64 finite differences and against their torch.nn twins (autograd), plus bit-identical init.

Adding a layer adds one line to LAYERS. Torch's attention runs a fused kernel (its "fast path") in
evaluation mode without gradients; every gradient comparison here runs the twins in training mode
with parameters that need gradients, which takes the ordinary path (dropout is 0, so training
and evaluation compute the same function). The fast path is compared on its own, in float32.
"""

from __future__ import annotations

import pytest
import torch
from layer_check import (
    assert_identical_init,
    check_against_autograd,
    check_finite_differences,
    copy_parameters,
)
from torch import nn

import scratch
import torch_impl
from compare.base import agreement


class SelfAttention(nn.MultiheadAttention):
    """nn.MultiheadAttention(batch_first=True) called as self-attention with one input, as scratch's."""

    def __init__(self, embed_dim: int, num_heads: int) -> None:
        super().__init__(embed_dim, num_heads, batch_first=True)

    def forward(self, x):
        return super().forward(x, x, x, need_weights=False)[0]


TINY_VIT = dict(image_size=8, patch_size=4, in_channels=1, dim=8, depth=1, heads=2, mlp_dim=12, num_classes=3)

# name: (scratch factory, torch factory taking the scratch layer, input shape)
LAYERS = {
    "layernorm": (lambda: scratch.LayerNorm(6), lambda s: copy_parameters(s, nn.LayerNorm(6)), (3, 4, 6)),
    "attention": (lambda: scratch.MultiheadAttention(6, 2), lambda s: copy_parameters(s, SelfAttention(6, 2)),
                  (2, 4, 6)),
    "block": (lambda: scratch.TransformerEncoderLayer(6, 2, 8),
              lambda s: copy_parameters(s, torch_impl.TransformerEncoderLayer(6, 2, 8)), (2, 4, 6)),
    "vit-mean": (lambda: scratch.ViT(**TINY_VIT), lambda s: copy_parameters(s, torch_impl.ViT(**TINY_VIT)),
                 (2, 1, 8, 8)),
    "vit-cls": (lambda: scratch.ViT(**TINY_VIT, pool="cls"),
                lambda s: copy_parameters(s, torch_impl.ViT(**TINY_VIT, pool="cls")), (2, 1, 8, 8)),
}


def make(name: str, dtype: torch.dtype, seed: int = 0):
    """The scratch layer with every parameter moved off its initial value (layer norm starts at
    weight 1, bias 0; attention's biases at 0), its torch twin with the same values, an input and a dout."""
    torch.manual_seed(seed)
    make_scratch, make_torch, shape = LAYERS[name]
    layer = make_scratch()
    for p in layer.parameters():  # in float32, before the twin copies them: both then cast the same values
        p.add_(0.5 * torch.randn_like(p))
    module = make_torch(layer).to(dtype=dtype)
    layer.to(dtype=dtype)
    x = torch.randn(shape, dtype=dtype)
    dout = torch.randn(layer.forward(x).shape, dtype=dtype)
    return layer, module, x, dout


@pytest.mark.parametrize("name", LAYERS)
def test_finite_differences_float64(name):
    layer, _, x, dout = make(name, torch.float64)
    check_finite_differences(layer, x, dout)


@pytest.mark.parametrize("dtype", [torch.float64, torch.float32])
@pytest.mark.parametrize("name", LAYERS)
def test_matches_autograd(name, dtype):
    layer, module, x, dout = make(name, dtype, seed=1)
    check_against_autograd(layer, module, x, dout)


INITS = {
    "layernorm": (lambda: scratch.LayerNorm(8), lambda: nn.LayerNorm(8)),
    "attention": (lambda: scratch.MultiheadAttention(16, 4), lambda: nn.MultiheadAttention(16, 4, batch_first=True)),
    "block": (lambda: scratch.TransformerEncoderLayer(16, 4, 32),
              lambda: torch_impl.TransformerEncoderLayer(16, 4, 32)),
    "vit-mean": (scratch.ViT, torch_impl.ViT),
    "vit-cls": (lambda: scratch.ViT(pool="cls"), lambda: torch_impl.ViT(pool="cls")),
}


@pytest.mark.parametrize("name", INITS)
def test_init_is_bit_identical(name):
    assert_identical_init(*INITS[name])


def test_block_twin_is_torch_transformer_encoder_layer_pre_norm_gelu():
    block = torch_impl.TransformerEncoderLayer(16, 4, 32)
    assert isinstance(block, nn.TransformerEncoderLayer)
    assert block.norm_first and block.self_attn.batch_first and block.activation_relu_or_gelu == 2
    assert block.dropout.p == block.dropout1.p == block.dropout2.p == 0.0


@pytest.mark.parametrize("pool", ["mean", "cls"])
def test_whole_vit_matches_torch_float64(pool):
    """The default ViT on a random batch [4, 1, 28, 28]: logits, dx and every parameter gradient."""
    torch.manual_seed(0)
    ours = scratch.ViT(pool=pool)
    for p in ours.parameters():  # a class token of zeros and unit layer norms would hide some paths
        p.add_(0.1 * torch.randn_like(p))
    theirs = copy_parameters(ours, torch_impl.ViT(pool=pool)).to(dtype=torch.float64)
    ours.to(dtype=torch.float64)
    x = torch.randn(4, 1, 28, 28, dtype=torch.float64)
    dlogits = torch.randn(4, 10, dtype=torch.float64)
    check_against_autograd(ours, theirs, x, dlogits)


def test_vit_backward_without_input_gradient_fills_the_same_gradients():
    torch.manual_seed(0)
    model = scratch.ViT(**TINY_VIT).to(dtype=torch.float64)
    x, dlogits = torch.randn(3, 64, dtype=torch.float64), torch.randn(3, 3, dtype=torch.float64)
    model.forward(x)
    dx = model.backward(dlogits)
    assert dx.shape == x.shape  # returned in the input's own shape, here flattened
    full = {n: g.clone() for n, g in model.named_gradients()}
    model.forward(x)
    assert model.backward(dlogits, input_grad=False) is None
    for name, g in model.named_gradients():
        assert torch.equal(g, full[name]), name


@pytest.mark.parametrize("pool", ["mean", "cls"])
def test_state_dict_loads_across(pool):
    torch.manual_seed(1)
    ours = scratch.ViT(pool=pool)
    torch.manual_seed(2)
    theirs = torch_impl.ViT(pool=pool)
    theirs.load_state_dict(ours.state_dict())  # strict: every key, every shape
    x = torch.randn(2, 784)
    with torch.no_grad():
        agreement.assert_agree("logits after loading", ours.forward(x), theirs.train()(x), agreement.AUTOGRAD_FLOAT32)
    torch.manual_seed(3)
    other = torch_impl.ViT(pool=pool)
    ours.load_state_dict(other.state_dict())
    for name, p in other.named_parameters():
        assert torch.equal(dict(ours.named_parameters())[name], p.detach()), name


def test_attention_maps_match_torch_and_are_distributions():
    torch.manual_seed(0)
    ours = scratch.ViT(pool="cls").to(dtype=torch.float64)
    theirs = copy_parameters(ours, torch_impl.ViT(pool="cls")).to(dtype=torch.float64).eval()
    x = torch.randn(3, 1, 28, 28, dtype=torch.float64)
    maps_ours, maps_theirs = ours.attention_maps(x), theirs.attention_maps(x)
    assert len(maps_ours) == len(maps_theirs) == 3  # one per block
    for k, (a, b) in enumerate(zip(maps_ours, maps_theirs, strict=True)):
        assert a.shape == (3, 4, 17, 17)  # batch, heads, tokens (16 patches + the class token), tokens
        agreement.assert_agree(f"attention map of block {k}", a, b, agreement.AUTOGRAD_FLOAT64)
        torch.testing.assert_close(a.sum(dim=-1), torch.ones(3, 4, 17, dtype=torch.float64))


def test_torch_fast_path_in_evaluation_agrees_float32():
    """In eval mode without gradients torch runs the fused encoder-layer kernel: same function, other rounding."""
    torch.manual_seed(0)
    ours = scratch.ViT()
    theirs = copy_parameters(ours, torch_impl.ViT()).eval()
    x = torch.randn(16, 784)
    with torch.no_grad():
        fused = theirs(x)
        torch.backends.mha.set_fastpath_enabled(False)
        try:
            ordinary = theirs(x)
        finally:
            torch.backends.mha.set_fastpath_enabled(True)
    assert not torch.equal(fused, ordinary), "expected torch's fused path here (it rounds differently)"
    agreement.assert_agree("eval-mode logits", ours.forward(x), fused, agreement.AUTOGRAD_FLOAT32)


def test_gradients_are_written_in_place():
    """An optimizer holds the gradient buffers from model.gradients(); backward must fill those very tensors."""
    torch.manual_seed(0)
    model = scratch.ViT(**TINY_VIT, pool="cls")
    buffers = model.gradients()
    model.forward(torch.randn(2, 64))
    model.backward(torch.randn(2, 3), input_grad=False)
    for (name, g), held in zip(model.named_gradients(), buffers, strict=True):
        assert g is held, f"d{name} was replaced by a new tensor"
        assert g.abs().sum() > 0, f"d{name} was not filled"


def test_softmax_backward_is_the_jacobian_product():
    p = torch.softmax(torch.randn(5, dtype=torch.float64), dim=0)
    dp = torch.randn(5, dtype=torch.float64)
    jacobian = torch.diag(p) - torch.outer(p, p)  # dp_i/ds_j = p_i (delta_ij - p_j)
    torch.testing.assert_close(scratch.attention.softmax_backward(p, dp), jacobian.t() @ dp)


def test_wrong_shapes_are_explained():
    with pytest.raises(ValueError, match="divisible by num_heads"):
        scratch.MultiheadAttention(10, 4)
    with pytest.raises(ValueError, match=r"expects images of 784 values.*\[B, 1, 28, 28\]"):
        scratch.ViT()(torch.zeros(2, 32, 32))
    with pytest.raises(ValueError, match="not a multiple of patch_size"):
        scratch.ViT(patch_size=5)
    with pytest.raises(ValueError, match="last dimension is 8"):
        scratch.LayerNorm(8)(torch.zeros(2, 7))
