"""E1 integrated gradients and E2 occlusion (eval/attribution.py): completeness, the plain rule beside the fast one,
the two methods agreeing on the words that matter, tokens merged into words, and `scripts.classify --explain`."""

from __future__ import annotations

import pytest
import torch

from data.windows import Specials, text_ids, text_windows
from eval.attribution import (TOLERANCE, baseline_windows, clenshaw_curtis_points, explain, integrated_gradients,
                              occlusion, refine_pieces, riemann_points, strongest, token_places, word_spans)
from model.bert import Bert, BertClassifier
from tokenizer_bridge.load import load_bert_tokenizer

PASSAGE = ("Alice was beginning to get very tired of sitting by her sister on the bank, and of having nothing to do: "
           "once or twice she had peeped into the book her sister was reading.")


@pytest.fixture(scope="module")
def minilm_judge(minilm_folder):
    """The real MiniLM under a seeded random head: the judge's network, at the judge's size. The head is scaled so
    that its logit moves between a text and the baseline by about as much as a trained judge's (1 to 2)."""
    torch.manual_seed(0)
    model = BertClassifier(Bert.from_pretrained(minilm_folder), ("alice", "edgar")).eval()
    with torch.no_grad():
        model.head.weight.mul_(100)
    return model, load_bert_tokenizer(minilm_folder)


def logit_change(model, x, mask, baseline, label):
    with torch.no_grad():
        return float((model(x, mask)[:, label] - model(baseline, mask)[:, label]).sum())


def test_the_path_rules_are_e1s_riemann_sum_and_clenshaw_curtis_on_0_1():
    alphas, weights = riemann_points(4)
    assert alphas.tolist() == [0.25, 0.5, 0.75, 1.0] and weights.tolist() == [0.25] * 4  # k/m, 1/m
    alphas, weights = clenshaw_curtis_points(2)  # Simpson's rule: 1/6, 4/6, 1/6 at 0, 1/2, 1
    assert alphas.tolist() == pytest.approx([0.0, 0.5, 1.0]) and weights.tolist() == pytest.approx([1 / 6, 2 / 3, 1 / 6])
    alphas, weights = clenshaw_curtis_points(16)
    for degree in range(17):  # exact for polynomials of degree n: the integral of a^d over [0, 1] is 1/(d + 1)
        assert float((weights * alphas**degree).sum()) == pytest.approx(1 / (degree + 1), abs=1e-12)
    assert torch.allclose(clenshaw_curtis_points(32)[0][0::2], alphas)  # nested: refining keeps every point
    with pytest.raises(ValueError, match="even number"):
        clenshaw_curtis_points(5)


def test_e1_completeness_on_minilm_within_1e_3(minilm_judge):
    """E1: sum_i IG_i = z_a(e) - z_a(e'); with 65 Clenshaw-Curtis points within 1e-3, and with too few points on E1's
    own Riemann sum not (so the check can fail)."""
    model, tok = minilm_judge
    sp = Specials.of(tok)
    x, mask = text_windows(text_ids(tok, PASSAGE), 64, sp)
    baseline = baseline_windows(x, sp)
    change = logit_change(model, x, mask, baseline, 1)
    assert abs(change) > 0.5  # a real change to split up
    ig = integrated_gradients(model, x, mask, 1, baseline, 64)
    assert abs(float(ig.sum()) - change) < 1e-3
    assert abs(float(integrated_gradients(model, x, mask, 1, baseline, 2, "riemann").sum()) - change) > 1e-3
    special = (x == sp.cls) | (x == sp.sep) | (x == sp.pad)
    assert bool((ig[special] == 0).all())  # the baseline keeps them: e_i - e'_i = 0


def test_the_plain_riemann_sum_and_clenshaw_curtis_give_the_same_attributions(minilm_judge):
    """The plain rule (E1 as written) converges to the fast rule's answer, token by token."""
    model, tok = minilm_judge
    sp = Specials.of(tok)
    x, mask = text_windows(text_ids(tok, "Quoth the Raven, Nevermore. The tell-tale heart beat on."), 32, sp)
    baseline = baseline_windows(x, sp)
    fast = integrated_gradients(model, x, mask, 0, baseline, 64)
    plain = integrated_gradients(model, x, mask, 0, baseline, 256, "riemann")
    assert torch.allclose(plain, fast, atol=2e-3 * float(fast.abs().max()) + 1e-4)


def test_integrated_gradients_of_a_window_do_not_depend_on_its_neighbours(minilm_judge):
    """Two windows explained together give each window's attributions alone (rows are independent)."""
    model, tok = minilm_judge
    sp = Specials.of(tok)
    x, mask = text_windows(text_ids(tok, PASSAGE), 24, sp)
    assert len(x) >= 2
    both = integrated_gradients(model, x, mask, 0, baseline_windows(x, sp), 4)
    first = integrated_gradients(model, x[:1], mask[:1], 0, baseline_windows(x[:1], sp), 4)
    assert torch.allclose(both[:1], first, atol=1e-5)


@pytest.fixture(scope="module")
def raven_judge(tiny_bert_config, minilm_folder):
    """A tiny judge trained on made-up sentences with up to two alice words ('rabbit', 'hatter') and up to two edgar
    words ('raven', 'tomb'), labelled by which there are more of: every such word counts, so a hand-made passage has
    words whose push is known."""
    tok = load_bert_tokenizer(minilm_folder)
    torch.manual_seed(0)
    model = BertClassifier(Bert(tiny_bert_config), ("alice", "edgar"), dropout=0.0)
    fillers = ["the", "old", "sat", "by", "door", "and", "then", "night", "a", "small", "ran", "was", "there"]
    keys = (["rabbit", "hatter"], ["raven", "tomb"])
    g = torch.Generator().manual_seed(0)
    pick = lambda n: int(torch.randint(n, (1,), generator=g))  # noqa: E731
    sp = Specials.of(tok)
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    model.train()
    for _ in range(300):
        texts, labels = [], []
        while len(texts) < 16:
            counts = (pick(3), pick(3))
            if counts[0] == counts[1]:
                continue
            words = [fillers[pick(len(fillers))] for _ in range(8)]
            for label, n in enumerate(counts):
                for _ in range(n):
                    words.insert(pick(len(words) + 1), keys[label][pick(2)])
            texts.append(" ".join(words))
            labels.append(int(counts[1] > counts[0]))
        x = torch.nn.utils.rnn.pad_sequence([text_windows(text_ids(tok, t), 32, sp)[0][0] for t in texts],
                                            batch_first=True, padding_value=sp.pad)
        loss = torch.nn.functional.cross_entropy(model(x, (x != sp.pad).long()), torch.tensor(labels))
        opt.zero_grad()
        loss.backward()
        opt.step()
    return model.eval(), tok


def test_occlusion_and_integrated_gradients_agree_on_the_strongest_words(raven_judge):
    """E1 and E2 on a hand-made passage: the same strongest words, pushing the same way."""
    model, tok = raven_judge
    text = "the raven sat by the old tomb and then the small rabbit ran"
    ig = explain(model, tok, text, 32, ["alice", "edgar"], author="edgar", method="ig")
    occ = explain(model, tok, text, 32, ["alice", "edgar"], author="edgar", method="occlusion")
    by_word = {w.text: w.score for w in ig.words}
    assert by_word["raven"] > 0 and by_word["tomb"] > 0 > by_word["rabbit"]  # towards edgar, away from edgar
    top_ig = sorted(ig.words, key=lambda w: -abs(w.score))[:3]
    assert {w.text for w in top_ig} == {"raven", "tomb", "rabbit"}
    occ_score = {(w.start, w.end): w.score for w in occ.words}
    for w in top_ig:
        assert (w.score > 0) == (occ_score[(w.start, w.end)] > 0), w.text
    towards, away = strongest(ig.words, 2)
    assert {w.text for w in towards} == {"raven", "tomb"} and [w.text for w in away][:1] == ["rabbit"]


def test_occlusion_is_the_change_of_the_logit_with_the_word_masked_e2(raven_judge):
    """E2 by hand for one word: Delta = z_a(x) - z_a(x with its token replaced by [MASK])."""
    model, tok = raven_judge
    sp = Specials.of(tok)
    text = "the raven sat by the door"
    x, mask = text_windows(text_ids(tok, text), 32, sp)
    delta = occlusion(model, x, mask, 1, [[(0, 2)]], tok.token_to_id("[MASK]"))
    by_hand = x.clone()
    by_hand[0, 2] = tok.token_to_id("[MASK]")
    with torch.no_grad():
        expected = float(model(x, mask)[0, 1] - model(by_hand, mask)[0, 1])
    assert float(delta[0]) == pytest.approx(expected, abs=1e-5)


def test_word_pieces_merge_into_the_words_of_the_text(minilm_folder):
    tok = load_bert_tokenizer(minilm_folder)
    text = "Curiouser and CURIOUSER!\n  said Alice"
    spans = word_spans(tok, text)
    assert [text[s:e] for s, e, _ in spans] == ["Curiouser", "and", "CURIOUSER", "!", "said", "Alice"]
    assert sum(len(t) for _, _, t in spans) == len(text_ids(tok, text))
    assert len(spans[0][2]) > 1  # several WordPiece tokens, one word
    assert token_places([0, 5, 6], per_window=6) == [(0, 1), (0, 6), (1, 1)]  # after each window's [CLS]


def steep_path(alphas: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """A made-up path with the shape of a judge's: z(alpha) = tanh(30 (alpha - 0.43)), flat but for a steep climb,
    its derivative split between two tokens 1:3. One window: summands (P, 1, 2), logits (P, 1)."""
    z = torch.tanh(30 * (alphas - 0.43))
    slope = 30 * (1 - z**2)
    return slope.view(-1, 1, 1) * torch.tensor([0.25, 0.75], dtype=torch.float64), z.view(-1, 1)


def test_the_pieces_refine_where_the_logit_moves_until_the_path_is_complete():
    """Completeness on every piece: the piece holding the climb gets the points, the flat ones keep Simpson's 3, the
    whole path adds up within the tolerance, and with under half the points Clenshaw-Curtis on the whole path needs."""
    asked = []
    change = float(torch.tanh(torch.tensor(30 * 0.57)) - torch.tanh(torch.tensor(-30 * 0.43)))  # z(1) - z(0)
    path = refine_pieces(lambda alphas: asked.append(len(alphas)) or steep_path(alphas), torch.tensor([change]))
    assert [(p.a, p.b) for p in path] == [(0, 0.25), (0.25, 0.5), (0.5, 0.75), (0.75, 1)]
    assert max(path, key=lambda p: p.intervals).a == 0.25 and path[0].intervals == path[-1].intervals == 2
    assert abs(float(sum(p.attributions() for p in path).sum()) - change) <= TOLERANCE
    shares = torch.tensor([0.25, 0.75], dtype=torch.float64)
    assert torch.allclose(sum(p.attributions() for p in path)[0], change * shares, atol=1e-3)
    points = sum(asked)  # every point computed once: a refined piece keeps its points
    assert points == 1 + sum(p.intervals for p in path)
    n = 2
    while abs(float((clenshaw_curtis_points(n)[1].view(-1, 1, 1) * steep_path(clenshaw_curtis_points(n)[0])[0]).sum())
              - change) > TOLERANCE:
        n *= 2
    assert 2 * points < n + 1  # 29 against 65
    one_piece = refine_pieces(steep_path, torch.tensor([change]), pieces=1, max_points=9)  # the cap stops refining, complete or not
    assert one_piece[0].intervals == 8 and abs(float(one_piece[0].gap())) > TOLERANCE


def test_explain_is_complete_and_agrees_with_a_fixed_rule_token_by_token(minilm_judge):
    """A 256-token window of MiniLM: explain's words add up to the logit's change (computed apart, by two plain
    forward passes) within the tolerance, and its tokens' attributions are those of 65 Clenshaw-Curtis points."""
    model, tok = minilm_judge
    text = " ".join([PASSAGE] * 5)
    ex = explain(model, tok, text, 256, ["alice", "edgar"], author="edgar")
    sp = Specials.of(tok)
    x, mask = text_windows(text_ids(tok, text), 256, sp)
    change = logit_change(model, x, mask, baseline_windows(x, sp), 1)
    assert abs(ex.attribution_sum - change) < TOLERANCE and ex.logit_change == pytest.approx(change, abs=1e-6)
    assert ex.steps < 65
    assert len(x) == 1  # one window: token n sits at n + 1, after [CLS]
    fixed = integrated_gradients(model, x, mask, 1, baseline_windows(x, sp), 64)[0]
    by_word = torch.tensor([float(fixed[[1 + n for n in tokens]].sum()) for _, _, tokens in word_spans(tok, text)])
    assert torch.allclose(torch.tensor([w.score for w in ex.words]), by_word, atol=3e-3 * float(by_word.abs().max()))


def test_a_long_text_is_explained_window_by_window_and_every_token_counts(minilm_judge):
    model, tok = minilm_judge
    text = " ".join([PASSAGE] * 3)
    ex = explain(model, tok, text, 32, ["alice", "edgar"])
    assert len(ex.window_probs) == len(text_windows(text_ids(tok, text), 32, Specials.of(tok))[0]) > 1
    assert "".join(w.text for w in ex.words) == "".join(text.split())  # every character of every word, in order
    assert abs(ex.attribution_sum - ex.logit_change) < 1e-3 * len(ex.window_probs)
    with pytest.raises(ValueError, match="not one of this judge"):
        explain(model, tok, text, 32, ["alice", "edgar"], author="twain")


def test_classify_explain_prints_the_strongest_words_and_writes_the_coloured_page(tmp_path, make_tiny_judge, capsys):
    from scripts import classify as program

    run = make_tiny_judge(tmp_path / "runs")
    page = tmp_path / "why.html"
    text = "Curiouser and curiouser! cried Alice, and the Raven said nevermore."
    assert program.main(["--judge", str(run), "--explain", "--html", str(page), text]) == 0
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("P(Alice)=") and out[1].startswith("  towards ") and out[2].startswith("  away from ")
    parts = out[3].split("the words sum to ")[1].split(", z(text) - z(baseline) = ")
    assert abs(float(parts[0]) - float(parts[1])) < 2e-3  # E1's completeness, as printed (4 decimals each)
    html = page.read_text(encoding="utf-8")
    assert html.count("data-score=") == len(word_spans(load_bert_tokenizer(run / "hf"), text)) == 13
    assert "Curiouser</span>" in html and "http" not in html  # the text as written; nothing fetched from elsewhere
    assert program.main(["--judge", str(run), "--explain", "--json", "--method", "occlusion", "--author", "edgar", text]) == 0
    import json

    line = json.loads(capsys.readouterr().out)
    assert line["author"] == "edgar" and line["method"] == "occlusion" and len(line["words"]) == 13
    assert program.main(["--judge", str(run), "--html", str(page), text]) == 2  # --html without --explain
    assert "go with --explain" in capsys.readouterr().err
    assert program.main(["--judge", str(run), "--explain", "--author", "twain", text]) == 2
    assert "not one of this judge" in capsys.readouterr().err
