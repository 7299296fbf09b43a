"""The exporter's self-attention (backends/export_attention.py): the same numbers as open_clip's
nn.MultiheadAttention, in image and text towers (the text tower's causal mask) and for a boolean
mask, and graphs with the transposes gone."""
import copy
import warnings

import onnx
import pytest
import torch
from torch import nn

from novic_ros.backends.export_attention import ExportSelfAttention, with_export_attention


def test_image_and_text_towers_compute_the_same(tiny_encoder):
    model = tiny_encoder.model.float().eval()
    patched = with_export_attention(copy.deepcopy(model))
    wrapped = [m for m in patched.modules() if isinstance(m, ExportSelfAttention)]
    plain = [m for m in model.modules() if isinstance(m, nn.MultiheadAttention)]
    assert plain and len(wrapped) == len(plain)
    pixels = torch.randn(3, 3, *tiny_encoder.facts().preprocess.size, generator=torch.Generator().manual_seed(1))
    tokens = tiny_encoder.tokenizer(['a photo of a dog', 'a red car on a road', 'x'])
    with torch.no_grad():
        assert torch.allclose(patched.encode_image(pixels), model.encode_image(pixels), atol=1e-5)
        assert torch.allclose(patched.encode_text(tokens), model.encode_text(tokens), atol=1e-5)


@pytest.mark.parametrize('mask_kind', ['none', 'float', 'bool'])
def test_masks_mean_what_multihead_attention_means(mask_kind):
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(32, 4, batch_first=True).eval()
    x = torch.randn(2, 7, 32)
    mask = None
    if mask_kind == 'float':
        mask = torch.full((7, 7), float('-inf')).triu(1)
    elif mask_kind == 'bool':
        mask = torch.ones(7, 7, dtype=torch.bool).triu(1)      # True: may not attend
    with torch.no_grad():
        want = mha(x, x, x, need_weights=False, attn_mask=mask)[0]
        got = ExportSelfAttention(mha)(x, x, x, need_weights=False, attn_mask=mask)[0]
    assert torch.allclose(got, want, atol=1e-6)


def test_cross_attention_and_weights_go_to_the_wrapped_module():
    torch.manual_seed(0)
    mha = nn.MultiheadAttention(16, 2, batch_first=True).eval()
    q, kv = torch.randn(1, 3, 16), torch.randn(1, 5, 16)
    with torch.no_grad():
        out, weights = ExportSelfAttention(mha)(q, kv, kv)
        want, want_weights = mha(q, kv, kv)
    assert torch.equal(out, want) and torch.equal(weights, want_weights)


def test_sequence_first_modules_are_left_alone():
    seq_first = nn.Sequential(nn.MultiheadAttention(16, 2))
    assert isinstance(with_export_attention(seq_first)[0], nn.MultiheadAttention)


def _transposes(module, example, path) -> int:
    with warnings.catch_warnings():
        warnings.simplefilter('ignore')
        torch.onnx.export(module.eval(), (example,), str(path), dynamo=True, opset_version=18, verbose=False)
    return sum(n.op_type == 'Transpose' for n in onnx.load(str(path), load_external_data=False).graph.node)


def test_exported_image_graph_has_two_transposes_a_layer_fewer_than_before(tiny_encoder, tmp_path):
    from novic_ros.backends.onnx_export import ImageEncoderGraph
    model = copy.deepcopy(tiny_encoder.model).float().eval()
    layers = sum(isinstance(m, nn.MultiheadAttention) for m in model.visual.modules())
    example = torch.zeros(2, 3, *tiny_encoder.facts().preprocess.size)
    before = _transposes(ImageEncoderGraph(copy.deepcopy(model)), example, tmp_path / 'before.onnx')
    after = _transposes(ImageEncoderGraph(with_export_attention(model)), example, tmp_path / 'after.onnx')
    # open_clip's MultiheadAttention traces into about 8 transposes a layer; ours into 3 or fewer.
    assert after <= 3 * layers + 2 < before
