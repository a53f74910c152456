"""More than two authors: the n-gram baseline (N5) by hand, N4 by hand, both judges on the same passages,
and a tiny three-author run of the judge and of the generators."""

from __future__ import annotations

import json
import math

import pytest
import torch

from data.corpus import author_books
from eval.authorship import authorship, judges_log_probs, passages
from model.half import Precision
from model.ngram import NgramJudge, train_ngram_judge
from train.metrics import confusion_matrix, macro_accuracy


def test_naive_bayes_against_a_hand_computed_example(tmp_path):
    """Unigrams, alpha 1: theta_A(a) = (2+1)/(3+2) = 3/5, theta_A(b) = 2/5; B the other way round."""
    nb = train_ngram_judge({"A": "aab", "B": "abb"}, n_max=1, alpha=1.0, min_count=1)
    assert nb.probabilities(["a"])[0, 0] == pytest.approx(0.6)  # (3/5) / (3/5 + 2/5), uniform prior
    assert nb.probabilities(["ab"])[0, 0] == pytest.approx(0.5)  # 6/25 each
    assert nb.probabilities(["aac"])[0, 0] == pytest.approx(9 / 13)  # 'c' unseen: alpha/(3+2) for both
    log_post = nb.log_posterior("a")
    assert log_post.tolist() == pytest.approx([math.log(0.6), math.log(0.4)], abs=1e-6)
    nb.save(tmp_path)
    again = NgramJudge.load(tmp_path)
    assert again.probabilities(["aac"])[0, 0] == pytest.approx(9 / 13)


def test_n5_denominators_differ_when_the_authors_totals_differ_and_unseen_grams_get_alpha():
    """n = 1..2, alpha 1. A = "ab": grams a, b, ab (total 3); B = "b": grams b (total 1). V = {a, b, ab}, |V| = 3.

    theta_A = (1 + 1) / (3 + 3) = 1/3 for each of V; theta_B(b) = (1 + 1) / (1 + 3) = 1/2, theta_B(a) =
    theta_B(ab) = 1/4. x = "bb": grams b, b and bb, unseen: alpha / (3 + 3) = 1/6 for A, 1 / (1 + 3) for B.
    P(A | x) = (1/3 * 1/3 * 1/6) / (1/54 + 1/2 * 1/2 * 1/4) = (1/54) / (1/54 + 1/16) = 16/70.
    """
    nb = train_ngram_judge({"A": "ab", "B": "b"}, n_max=2, alpha=1.0, min_count=1)
    assert nb.probabilities(["bb"])[0, 0] == pytest.approx(16 / 70, abs=1e-6)
    assert nb.log_unseen.tolist() == pytest.approx([math.log(1 / 6), math.log(1 / 4)], abs=1e-6)


def test_n5_counts_every_order_up_to_four():
    """A = "abcd", B = "dcba", n = 1..4: 10 grams each, |V| = 4 + 6 + 4 + 2 = 16, so theta = 2/26 for a gram
    the author wrote, 1/26 for one of V it did not. x = "abcd": A wrote all 10 of its grams, B only the 4
    letters: P(A) / P(B) = 2^10 / 2^4 = 2^6, P(A | x) = 64/65. Stopping at trigrams would give 32/33."""
    nb = train_ngram_judge({"A": "abcd", "B": "dcba"}, alpha=1.0, min_count=1)
    assert nb.n_max == 4 and len(nb.vocab) == 16
    assert nb.probabilities(["abcd"])[0, 0] == pytest.approx(64 / 65, abs=1e-6)


def test_bigrams_and_the_vocabulary_cut():
    nb = train_ngram_judge({"A": "abab" * 50, "B": "baba" * 50 + "zz"}, n_max=2, min_count=2)
    p = nb.probabilities(["abab", "zzz"])
    assert p[0, 0] > 0.5 and p[1, 1] > 0.9  # "zz" only B wrote


def test_confusion_and_macro_accuracy_by_hand():
    predicted, labels = torch.tensor([0, 0, 1, 2, 2, 2, 1]), torch.tensor([0, 1, 1, 2, 2, 0, 1])
    c = confusion_matrix(predicted, labels, 3)
    assert c == [[1, 0, 1], [1, 2, 0], [0, 0, 2]]  # rows: true author, columns: predicted
    assert macro_accuracy(c) == pytest.approx((1 / 2 + 2 / 3 + 2 / 2) / 3)
    assert macro_accuracy([[3, 1], [0, 0]]) == 0.75  # an author with no window is left out


def test_both_judges_on_the_same_passages(corpus_ids, make_tiny_judge, tmp_path, monkeypatch, corpus_mirror):
    from plumbing.judges import load_bert_judge

    monkeypatch.setenv("ALICE_EDGAR_CORPUS", str(corpus_mirror))
    tok, authors = corpus_ids
    heldout = {a: tok.decode(authors[a].heldout[:3000].tolist()) for a in ("alice", "edgar")}
    x, texts, y = passages(tok, heldout, 64, per_author=5)
    assert len(texts) == len(x) == 10 and y.tolist() == [0] * 5 + [1] * 5
    for row, text, label in zip(x, texts, y):  # the raw text of each passage is the text of its window's tokens
        assert text in heldout[("alice", "edgar")[label]]
        assert tok.encode(text, add_special_tokens=False).ids[-20:] == row[-21:-1].tolist()  # (a window may start
        # inside a word, whose first piece then encodes differently on its own)
    judge, jtok, _ = load_bert_judge(make_tiny_judge(tmp_path) / "hf")
    nb = train_ngram_judge({a: heldout[a] for a in ("alice", "edgar")}, n_max=2)
    books = {a: author_books(a, "tail", jtok) for a in ("alice", "edgar")}
    r = authorship(judge, jtok, books, "tail", nb, lengths=(64,), per_author=4)
    for side in ("bert", "ngram"):
        assert [sum(row) for row in r["64"][side]["confusion"]] == [4, 4]
        per_author = r["64"][side]["per_author"]
        assert per_author["alice"]["n"] == per_author["edgar"]["n"] == 4
        assert r["64"][side]["macro_acc"] == pytest.approx((per_author["alice"]["acc"] + per_author["edgar"]["acc"]) / 2)


def test_the_table_read_under_bfloat16_autocast_gives_the_float32_probabilities(corpus_ids, make_tiny_judge, tmp_path):
    """The report's fast path (BERT under autocast where the machine measures it faster) against the plain float32 one."""
    from plumbing.judges import load_bert_judge

    tok, authors = corpus_ids
    heldout = {a: tok.decode(authors[a].heldout[:3000].tolist()) for a in ("alice", "edgar")}
    judge, jtok, _ = load_bert_judge(make_tiny_judge(tmp_path) / "hf")
    nb = train_ngram_judge(heldout, n_max=2)
    bf16 = Precision(torch.device("cpu"), "bf16", torch.bfloat16, None, "the test asks for it")
    (bert, ngram), labels = judges_log_probs(judge, jtok, nb, heldout, 64, 4, "held-out")
    (fast_bert, fast_ngram), fast_labels = judges_log_probs(judge, jtok, nb, heldout, 64, 4, "held-out", bf16)
    gap = (bert - fast_bert).abs().max().item()
    assert 0 < gap < 0.05  # computed in 16 bits (not the float32 numbers), to within bfloat16's rounding
    assert torch.equal(ngram, fast_ngram) and torch.equal(labels, fast_labels)  # the n-gram judge, the labels: as they were


def test_a_tiny_three_author_run_of_the_judge_and_the_generators(make_tiny_bert, small_mirror, tmp_path,
                                                                  tiny_neo_base):
    from plumbing.runs import read_jsonl
    from scripts import coevolve
    from scripts import train_bert as judge

    authors = "alice,edgar,austen"
    run = judge.train_judge(["--model", str(make_tiny_bert(tmp_path / "tiny")), "--runs-dir", str(tmp_path),
                             "--preset", "cpu", "--authors", authors, "--split", "book", "--per-author", "2", "--length", "32",
                             "--eval-length", "64", "--eval-per-author", "2", "--steps", "2", "--device", "cpu"])
    last = [r for r in read_jsonl(run / "metrics.jsonl") if r["kind"] == "eval"][-1]
    assert len(last["confusion"]) == 3 and set(last["heldout_acc_per_author"]) == set(authors.split(","))
    config = json.loads((run / "hf" / "config.json").read_text())
    assert config["id2label"] == {"0": "alice", "1": "edgar", "2": "austen"} and config["alice_edgar"]["split"] == "book"
    co = coevolve.coevolve(["--base", str(tiny_neo_base), "--runs-dir", str(tmp_path), "--authors", authors, "--steps", "2",
                            "--eval-every", "2", "--rows", "2", "--judge-length", "12", "--length", "32",
                            "--batch-size", "2", "--heldout-windows", "2", "--device", "cpu"])
    evals = [r for r in read_jsonl(co / "metrics.jsonl") if r["kind"] == "eval"]
    assert evals[0]["n"] == 6 and len(evals[0]["confusion"]) == 3  # N6: 3 generators x 2 rows, 3 classes
    assert {"own_austen", "nb_own_austen", "S_austen", "heldout_austen"} <= set(evals[-1])


def test_a_1024_token_passage_is_four_windows_of_256_with_one_answer(corpus_ids, make_tiny_judge, tmp_path, monkeypatch,
                                                                     corpus_mirror):
    """The long row of the authorship table: each passage's 1016 text tokens in four 256-token windows (254 each, with
    [CLS] and [SEP]), BERT's answer from all four by the passage rule (eval/scoring.py:passage_log_probs)."""
    from eval.authorship import judges_log_probs
    from eval.scoring import passage_log_probs
    from plumbing.judges import load_bert_judge
    from train.bert_judge import predict_logits

    monkeypatch.setenv("ALICE_EDGAR_CORPUS", str(corpus_mirror))
    tok, authors = corpus_ids
    heldout = {a: tok.decode(authors[a].heldout[:6000].tolist()) for a in ("alice", "edgar")}
    x, texts, y = passages(tok, heldout, 1024, per_author=3)
    assert x.shape == (6 * 4, 256) and len(texts) == 6 and y.tolist() == [0, 0, 0, 1, 1, 1]
    assert (x[:, 0] == tok.token_to_id("[CLS]")).all() and (x[:, -1] == tok.token_to_id("[SEP]")).all()
    judge, jtok, _ = load_bert_judge(make_tiny_judge(tmp_path) / "hf")
    nb = train_ngram_judge(heldout, n_max=2)
    (bert, _), _ = judges_log_probs(judge, jtok, nb, heldout, 1024, 3, "held-out")
    windows = predict_logits(judge, x, torch.ones_like(x)).log_softmax(-1).view(6, 4, -1)
    assert torch.allclose(bert, passage_log_probs(windows).double(), atol=1e-6)


def test_a_whole_chapter_is_one_passage_read_in_every_window(corpus_ids, make_tiny_judge, tmp_path):
    """Chapters of at least four 256-token windows, each judged by BERT from all its consecutive windows (one answer,
    the passage rule) and by the n-gram judge whole; a chapter heading and too short a piece are not chapters."""
    from data.windows import Specials, text_ids, text_windows
    from eval.authorship import CHAPTER_WINDOWS, chapter_log_probs
    from eval.scoring import passage_log_probs
    from plumbing.judges import load_bert_judge
    from train.bert_judge import predict_logits

    tok, authors = corpus_ids
    words = {a: tok.decode(authors[a].heldout[:5000].tolist()).strip() for a in ("alice", "edgar")}
    expected = [f"CHAPTER I.\n\n{words['alice'][:9000]}", f"CHAPTER II.\n\n{words['alice'][9000:]}",
                f"CHAPTER 1\n\n{words['edgar']}"]
    heldout = {"alice": f"{expected[0]}\n\n{expected[1]}\n\nCHAPTER III.\n\nToo short.",
               "edgar": f"Words before any heading.\n\n{expected[2]}"}
    judge, jtok, _ = load_bert_judge(make_tiny_judge(tmp_path) / "hf")
    nb = train_ngram_judge(words, n_max=2)
    bert, ngram, y = chapter_log_probs(judge, jtok, nb, heldout)
    assert y.tolist() == [0, 0, 1]
    for row, text in zip(bert, expected):
        x, mask = text_windows(text_ids(jtok, text), 256, Specials.of(jtok))
        assert len(x) >= CHAPTER_WINDOWS
        assert torch.allclose(row, passage_log_probs(predict_logits(judge, x, mask).log_softmax(-1)).double(), atol=1e-5)
    assert ngram.shape == (3, 2)
    assert chapter_log_probs(judge, jtok, nb, {**heldout, "edgar": "CHAPTER 1\n\nToo short."}) is None
