"""The model's instrumented path and device handling (cases found by ``make mutation``)."""

from __future__ import annotations

import pytest
import torch

from jointtask_lib.model import GPT, ModelConfig, Probe

torch.set_num_threads(1)

CFG = ModelConfig(vocab_size=11, block_size=9, n_embed=16, n_heads=4, n_layers=2, recurrence=3)


def _model():
    model = GPT(CFG, 2, seeds=[0, 1])
    g = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn(p.shape, generator=g) * 0.3)
    return model


def test_probe_stores_one_causal_pattern_per_step_and_layer_and_changes_nothing():
    model = _model()
    idx = torch.randint(0, 11, (2, 3, 9), generator=torch.Generator().manual_seed(1))
    probe = Probe(attention=True)
    with torch.no_grad():
        plain, probed = model(idx), model(idx, probe=probe)
    torch.testing.assert_close(probed, plain, rtol=1e-5, atol=1e-5)
    keys = {(s, l) for s in range(3) for l in range(2)}
    assert set(probe.attn) == keys
    assert set(probe.ratios) == {(s, l, k) for s, l in keys for k in ("attn", "mlp")}
    for att in probe.attn.values():
        assert att.shape == (2, 3, 4, 9, 9)
        torch.testing.assert_close(att.sum(-1), torch.ones(2, 3, 4, 9))
        assert float(att.triu(1).abs().max()) == 0.0  # no attention to later positions
    # the patterns differ between steps and layers (each key holds its own pass)
    assert not torch.allclose(probe.attn[(0, 0)], probe.attn[(0, 1)])
    assert not torch.allclose(probe.attn[(0, 1)], probe.attn[(1, 1)])


def test_probe_pattern_is_the_softmax_of_scaled_scores():
    """Layer 0, step 0: recompute the pattern from the weights (query-key products / sqrt(d_head))."""
    model = _model()
    idx = torch.randint(0, 11, (2, 1, 9), generator=torch.Generator().manual_seed(2))
    probe = Probe(attention=True)
    with torch.no_grad():
        model(idx, probe=probe)
        sd = model.state_dict()
        for i in range(2):
            x = sd["wte"][i][idx[i, 0]] + sd["wpe"][i][:9]
            h = torch.nn.functional.layer_norm(x, (16,), sd["backbone.blocks.0.ln1.weight"][i],
                                               sd["backbone.blocks.0.ln1.bias"][i])
            q, k, _ = (h @ sd["backbone.blocks.0.attn.qkv.weight"][i]).split(16, dim=-1)
            for head in range(4):
                qh, kh = q[:, 4 * head: 4 * head + 4], k[:, 4 * head: 4 * head + 4]
                scores = (qh @ kh.T) / 2.0  # sqrt(d_head = 4)
                scores = scores.masked_fill(torch.ones(9, 9, dtype=torch.bool).triu(1), float("-inf"))
                torch.testing.assert_close(probe.attn[(0, 0)][i, 0, head], scores.softmax(-1), rtol=1e-4, atol=1e-5)


@pytest.mark.parametrize("attention", [False, True])
def test_forward_keeps_everything_on_the_input_device(attention):
    """On the 'meta' device (shapes only): a helper tensor made on the CPU would make this fail,
    as it would on a GPU."""
    model = _model().to("meta")
    idx = torch.zeros(2, 3, 9, dtype=torch.long, device="meta")
    out = model(idx, probe=Probe(attention=True) if attention else None)
    assert out.device.type == "meta" and out.shape == (2, 3, 9, 11)


def test_too_long_input_is_rejected_with_the_limit():
    with pytest.raises(ValueError, match=r"^sequence length 10 exceeds 'block_size' = 9$"):
        _model()(torch.zeros(2, 1, 10, dtype=torch.long))
