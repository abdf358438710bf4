"""The vision transformer's layers by hand (LayerNorm, MultiheadAttention, the transformer block, ViT):
what the op table does not see.

Their gradients (finite differences and torch.autograd), forward passes, dtypes, layouts and documented errors
are checked by the tests generated from tests/ops.py. Torch's attention runs a fused kernel (its "fast path")
in evaluation mode without gradients; every gradient comparison there runs the twins in training mode with
parameters that need gradients, which takes the ordinary path (dropout is 0, so training and evaluation compute
the same function). Here: the bit-identical initialisation, the fast path (float32), state dicts, attention
maps, backward without the input gradient, gradients written in place, softmax's Jacobian.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn
from twins import assert_identical_init, copy_parameters

import scratch
import torch_impl
from compare.base import agreement

TINY_VIT = dict(image_size=8, patch_size=4, in_channels=1, dim=8, depth=1, heads=2, mlp_dim=12, num_classes=3)

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


