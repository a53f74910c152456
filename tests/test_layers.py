"""model/layers.py and model/bert.py speed pieces: dropout from 16-bit draws, the written-out
attention with dropout, and the [CLS]-only last block. Each must compute what the plain version does."""

from __future__ import annotations

import math

import pytest
import torch
import torch.nn.functional as F

from model.bert import Bert, BertClassifier, attention_with_dropout, mean_pool
from model.config import BertConfig
from model.layers import DROPOUT_BITS, Dropout, apply_dropout, dropout_keep_bits, dropout_mask, plain_dropout

pytestmark = pytest.mark.usefixtures("one_thread")  # see tests/conftest.py


def tiny_bert(seed: int = 0) -> Bert:
    torch.manual_seed(seed)
    cfg = BertConfig(vocab_size=100, hidden_size=32, num_hidden_layers=3, num_attention_heads=4,
                     intermediate_size=64, max_position_embeddings=64)
    return Bert(cfg)


@pytest.mark.parametrize("p", [0.1, 0.5, 0.9])
def test_dropout_mask_rate_is_p(p):
    n = 2_000_000
    rate = dropout_mask((n,), p).float().mean().item()
    used = round(p * 2**DROPOUT_BITS) / 2**DROPOUT_BITS
    assert abs(used - p) <= 2**-DROPOUT_BITS
    assert abs(rate - used) < 5 * math.sqrt(p * (1 - p) / n), (rate, used)  # 5 standard errors


def test_the_four_draws_of_one_random_integer_drop_independently():
    """dropout_mask takes four 15-bit draws from each 63-bit random integer: each of the four places drops at rate p,
    and two places of the same integer drop together at rate p^2 (a draw that reused bits would not)."""
    p, n = 0.3, 4_000_000
    places = dropout_mask((n,), p).view(-1, 4).float()  # row i: the four draws of integer i
    se = math.sqrt(p * (1 - p) / (n // 4))
    for j in range(4):
        assert abs(places[:, j].mean().item() - p) < 5 * se, j
    se2 = math.sqrt(p**2 * (1 - p**2) / (n // 4))
    for a, b in ((0, 1), (1, 2), (2, 3), (0, 3)):
        assert abs((places[:, a] * places[:, b]).mean().item() - p**2) < 5 * se2, (a, b)


def test_dropout_zeroes_or_rescales_and_is_identity_in_eval():
    torch.manual_seed(0)
    x = torch.rand(64, 256) + 1.0  # no zeros of its own
    drop = Dropout(0.25)
    y = drop(x)
    kept = y != 0
    assert torch.allclose(y[kept], x[kept] / 0.75)
    assert 0.2 < 1 - kept.float().mean().item() < 0.3
    assert torch.equal(drop.eval()(x), x)
    assert torch.equal(Dropout(0.0)(x), x)


def test_the_fast_dropout_and_the_plain_one_drop_as_often_and_rescale_alike():
    """Dropout (15-bit draws, one where) against plain_dropout (float draws, a product), p = 0.3 on 10^6 elements:
    the same share dropped (within 5 standard errors of p and of each other), the same 1/(1 - p) on the rest."""
    torch.manual_seed(0)
    x, p, n = torch.rand(1000, 1000) + 1.0, 0.3, 1_000_000
    fast, plain = Dropout(p)(x), plain_dropout(x, p)
    se = math.sqrt(p * (1 - p) / n)
    for y in (fast, plain):
        kept = y != 0
        assert abs((1 - kept.float().mean().item()) - p) < 5 * se
        assert torch.allclose(y[kept], x[kept] / (1 - p))
    assert abs((fast == 0).float().mean().item() - (plain == 0).float().mean().item()) < 5 * math.sqrt(2) * se
    assert torch.equal(plain_dropout(x, 0.0), x)


def test_dropout_gradient_passes_kept_elements_only():
    torch.manual_seed(0)
    x = torch.randn(8, 50, requires_grad=True)
    y = Dropout(0.5)(x)
    y.sum().backward()
    kept = y.detach() != 0
    assert torch.allclose(x.grad[kept], torch.full_like(x.grad[kept], 2.0))
    assert torch.equal(x.grad[~kept], torch.zeros_like(x.grad[~kept]))


@pytest.mark.parametrize("dtype", [torch.float32, torch.bfloat16, torch.float16, torch.float64])
def test_the_bit_mask_clears_what_where_zeroes_from_the_same_draws_forward_and_backward(dtype):
    """apply_dropout (an integer AND with `dropout_keep_bits`) against the readable rule where(dropout_mask, 0, x):
    the same draws (the same seed), the same numbers to the last bit, forward and backward, on a transposed
    (non-contiguous) input with zeros, -0.0, inf and nan of its own and through an expanded gradient."""
    shape, p = (6, 5, 4, 7), 0.3
    torch.manual_seed(3)
    assert torch.equal(dropout_keep_bits(shape, p, dtype) == 0, (torch.manual_seed(3), dropout_mask(shape, p))[1])
    x = torch.randn(shape).to(dtype).transpose(1, 2)
    x[0, 0, 0, :4] = torch.tensor([0.0, -0.0, float("inf"), float("nan")], dtype=dtype)
    x.requires_grad_(True)
    torch.manual_seed(5)
    ours = apply_dropout(x, p)
    (ours * 3).sum().backward()  # the gradient of a sum arrives expanded (stride 0)
    torch.manual_seed(5)
    dropped = dropout_mask(x.shape, p)
    ref = torch.where(dropped, 0.0, x.detach())
    assert torch.equal(ours.detach().view(torch.uint8), ref.view(torch.uint8))  # bit for bit (nan and +0 included)
    assert torch.equal(x.grad, torch.where(dropped, 0.0, torch.full_like(x.detach(), 3.0)))
    assert 0.2 < dropped.float().mean().item() < 0.4


def random_qkv(B=2, nh=3, T=7, hs=8, seed=0):
    g = torch.Generator().manual_seed(seed)
    return [torch.randn(B, nh, T, hs, generator=g, requires_grad=True) for _ in range(3)]


def test_attention_with_dropout_zero_equals_sdpa_values_and_gradients():
    q, k, v = random_qkv()
    mask = torch.zeros(2, 1, 1, 7)
    mask[1, ..., 5:] = torch.finfo(torch.float32).min  # padding in row 1
    ours = attention_with_dropout(q, k, v, mask, 0.0)
    grads = torch.autograd.grad(ours.square().sum(), (q, k, v))
    ref = F.scaled_dot_product_attention(q, k, v, attn_mask=mask)
    ref_grads = torch.autograd.grad(ref.square().sum(), (q, k, v))
    assert (ours - ref).abs().max() < 1e-6
    for a, b in zip(grads, ref_grads):
        assert (a - b).abs().max() < 1e-5


def test_attention_with_dropout_in_16_bits_stays_close_to_float32():
    """bfloat16 in and out, products in bfloat16, softmax in float32 (under autocast too): a few roundings off."""
    q, k, v = (t.detach().bfloat16() for t in random_qkv())
    ref = F.scaled_dot_product_attention(q.float(), k.float(), v.float())
    with torch.autocast("cpu", dtype=torch.bfloat16):
        ours = attention_with_dropout(q, k, v, None, 0.0)
    assert ours.dtype == torch.bfloat16
    assert (ours.float() - ref).abs().max() <= (ref.abs().max() * 4 * 2**-8).item()  # a few bfloat16 roundings


def test_attention_with_dropout_is_unbiased():
    """Inverted dropout keeps the expected output: the mean over many draws approaches no dropout."""
    q, k, v = (t.detach() for t in random_qkv(B=1, nh=1, T=6, hs=4))
    exact = F.scaled_dot_product_attention(q, k, v)
    torch.manual_seed(0)
    mean = torch.stack([attention_with_dropout(q, k, v, None, 0.3) for _ in range(4000)]).mean(0)
    assert (mean - exact).abs().max() < 0.05, (mean - exact).abs().max()
    one = attention_with_dropout(q, k, v, None, 0.3)
    assert (one - exact).abs().max() > 1e-3  # dropout really happens


def test_the_fast_pooled_vector_and_cls_row_equal_the_plain_forwards():
    bert = tiny_bert().eval()
    ids = torch.randint(0, 100, (3, 20))
    mask = torch.ones_like(ids)
    mask[2, 12:] = 0
    with torch.no_grad():
        hidden, pooled = bert(ids, mask)  # the plain forward: every block computes every position
        x, additive = bert.embed(ids, mask)
        for block in bert.blocks[:-1]:
            x = block(x, additive)
        cls_row, full_rows = bert.blocks[-1].cls_row(x, additive), bert.blocks[-1](x, additive)
        fast_pooled = bert.pooled(ids, mask)
    assert cls_row.shape == (3, 1, 32)
    assert (cls_row[:, 0] - full_rows[:, 0]).abs().max() < 1e-6
    assert (cls_row[:, 0] - hidden[:, 0]).abs().max() < 1e-6
    assert (fast_pooled - pooled).abs().max() < 1e-6


def test_classifier_gradients_equal_with_the_fast_pooled_vector_and_the_plain_one():
    """BertClassifier runs Bert.pooled; its loss and every gradient must equal the plain forward's."""
    clf = BertClassifier(tiny_bert()).eval()  # eval: no dropout, so both runs are exact
    ids = torch.randint(0, 100, (4, 16))
    labels = torch.tensor([0, 1, 0, 1])

    def grads(fast: bool) -> dict[str, torch.Tensor]:
        clf.zero_grad()
        pooled = clf.bert.pooled(ids) if fast else clf.bert(ids)[1]
        F.cross_entropy(clf.head(clf.drop(pooled)), labels).backward()
        return {n: p.grad.clone() for n, p in clf.named_parameters() if p.grad is not None}

    full, short = grads(False), grads(True)
    assert full.keys() == short.keys()
    for name in full:
        assert (full[name] - short[name]).abs().max() < 1e-6, name
    with torch.no_grad():
        assert torch.allclose(clf(ids), clf.head(clf.bert(ids)[1]), atol=1e-6)


def test_mean_pool_averages_the_real_tokens_only():
    """N1, mean-pooled: h = sum_i m_i h_i / sum_i m_i; padded positions (m_i = 0) count for nothing."""
    hidden = torch.randn(2, 4, 3)
    mask = torch.tensor([[1, 1, 1, 1], [1, 1, 0, 0]])
    pooled = mean_pool(hidden, mask)
    assert torch.allclose(pooled[0], (hidden[0, 0] + hidden[0, 1] + hidden[0, 2] + hidden[0, 3]) / 4)
    assert torch.allclose(pooled[1], (hidden[1, 0] + hidden[1, 1]) / 2)
    assert torch.equal(mean_pool(hidden, None), hidden.mean(dim=1))


def test_a_mean_pooled_classifier_reads_the_mean_and_not_the_padding():
    """pooling="mean": z = W mean(h) + b, the pooler unused and frozen; padding added behind a text changes nothing."""
    clf = BertClassifier(tiny_bert(), pooling="mean").eval()
    assert not any(p.requires_grad for p in clf.bert.pooler.parameters())
    ids = torch.randint(1, 100, (2, 10))
    padded = torch.cat([ids, torch.zeros(2, 5, dtype=ids.dtype)], dim=1)
    mask = torch.cat([torch.ones_like(ids), torch.zeros(2, 5, dtype=ids.dtype)], dim=1)
    with torch.no_grad():
        logits = clf(ids)
        assert torch.allclose(logits, clf.head(clf.bert(ids)[0].mean(dim=1)), atol=1e-6)
        assert torch.allclose(clf(padded, mask), logits, atol=1e-5)
        assert not torch.allclose(logits, clf.head(clf.bert(ids)[1]), atol=1e-3)  # not the [CLS] vector
    with pytest.raises(ValueError, match="pooling must be one of"):
        BertClassifier(tiny_bert(), pooling="max")


# ------------------------------------------------------------------ GPT-Neo attention: fast branches = the plain one


def _neo_attention(window):
    from model.config import GPTNeoConfig
    from model.gpt_neo import GPTNeoSelfAttention

    torch.manual_seed(0)
    cfg = GPTNeoConfig(vocab_size=50, max_position_embeddings=64, hidden_size=32, num_layers=1, num_heads=4,
                       window_size=window or 8, attention_layers=["local" if window else "global"])
    return GPTNeoSelfAttention(cfg, "local" if window else "global").eval(), cfg


def test_reference_attention_is_the_equation_by_hand():
    """q k^T with NO 1/sqrt(hs), causal, local window, softmax, weights v -- checked row by row by hand."""
    from model.gpt_neo import reference_attention

    torch.manual_seed(1)
    q, k, v = torch.randn(3, 1, 1, 5, 4).unbind(0)  # (B, nh, T, hs)
    out = reference_attention(q, k, v, window=2)
    for i in range(5):
        keys = [j for j in range(5) if j <= i and j > i - 2]  # itself and the one before
        w = torch.softmax(torch.stack([q[0, 0, i] @ k[0, 0, j] for j in keys]), 0)  # unscaled scores
        assert torch.allclose(out[0, 0, i], sum(wj * v[0, 0, j] for wj, j in zip(w, keys)), atol=1e-6)


@pytest.mark.parametrize("window", [None, 4])
def test_each_fast_attention_branch_equals_the_reference(window):
    """Plain causal (global, no cache), one-token decode (cache, T=1) and masked (cache, T>1 or local)."""
    from model.gpt_neo import KVCache

    attn, cfg = _neo_attention(window)
    x = torch.randn(2, 12, 32)
    with torch.no_grad():
        fast = attn(x)  # global: the is_causal branch; local: the masked branch
        attn.use_reference = True
        ref = attn(x)
        attn.use_reference = False
        assert torch.allclose(fast, ref, atol=1e-5)
        cache = KVCache(cfg, 2, 12)
        prefix = attn(x[:, :7], cache, 0)  # masked branch with a cache (T > 1)
        cache.length += 7
        steps = []
        for t in range(7, 12):  # the one-token decode branch
            steps.append(attn(x[:, t : t + 1], cache, 0))
            cache.length += 1
    assert torch.allclose(torch.cat([prefix] + steps, dim=1), ref, atol=1e-5)
