"""The third judge (model/feature_judge.py): a probe on a decoder's frozen features, its fit (train/probe.py), its
cache (plumbing/judges.py) and its place in the report's table and mix (eval/authorship.py)."""

import pytest
import torch

from model.feature_judge import SKIP, FeatureJudge, Reader, feature_block, passage_vectors, read_vectors
from model.half import Precision
from plumbing.judges import MEMO_FILE, load_feature_judge, load_reader, save_memo

FP32 = Precision(torch.device("cpu"), "fp32", torch.bfloat16, None, "the test asks for it")


@pytest.fixture(scope="module")
def reader(tiny_llama_base) -> Reader:
    return load_reader(tiny_llama_base, FP32)


def shortened(books: dict) -> dict:
    """The training books cut to their first 40,000 characters: enough passages for a probe, a few seconds to read."""
    for texts in books.values():
        texts.train = {name: text[:40000] for name, text in texts.train.items()}
    return books


def test_a_passage_vector_is_the_mean_of_the_blocks_output_from_position_skip_on_padded_or_not(reader):
    texts = ["Alice was beginning to get very tired of sitting by her sister on the bank, and of having nothing to do.",
             "Down, down, down."]
    alone = [read_vectors(reader, [t], (1, 2)) for t in texts]  # (1, 2, d) each
    together = read_vectors(reader, texts, (1, 2))  # the short one padded on the right
    for i in range(2):
        torch.testing.assert_close(together[i], alone[i][0], atol=1e-5, rtol=1e-5)
    ids = torch.tensor([reader.tok.encode(texts[0]).ids])
    assert ids.shape[1] > SKIP
    with torch.no_grad():
        (hidden,) = reader.decoder.hidden_states(ids, [2])
    torch.testing.assert_close(alone[0][0, 1], hidden[0, SKIP:].mean(0))  # h(x): positions SKIP.. of block 2's output
    short = torch.tensor([reader.tok.encode(texts[1]).ids])
    assert short.shape[1] <= SKIP
    with torch.no_grad():
        (hidden,) = reader.decoder.hidden_states(short, [2])
    torch.testing.assert_close(alone[1][0, 1], hidden[0, -1])  # a text of SKIP tokens or fewer: its last position
    with pytest.raises(ValueError, match="blocks 1 to 2"):
        read_vectors(reader, texts, (3,))
    assert feature_block(reader.decoder) == 2  # BLOCK 16, or the last of a decoder with fewer


def test_a_text_is_read_once_and_its_vectors_kept(tiny_llama_base):
    reader = load_reader(tiny_llama_base, FP32)  # a memo of its own
    texts = ["Down, down, down.", "Would the fall never come to an end?", "Down, down, down."]
    first = passage_vectors(reader, texts, (1, 2))
    torch.testing.assert_close(first, read_vectors(reader, texts, (1, 2)))  # what reading them gives
    assert len(reader.memo) == 2  # the repeated text read once
    reader.decoder = None  # nothing left to read with: what was read comes from the memo
    torch.testing.assert_close(passage_vectors(reader, texts[1::-1], (1, 2)), first[[1, 0]])
    for unread_texts, blocks in ((["A text never read."], (1, 2)), (texts, (2,))):  # another text, other blocks
        with pytest.raises(AttributeError):
            passage_vectors(reader, unread_texts, blocks)


def test_the_judge_is_n1_on_standardised_features_and_saves_itself_whole(tmp_path):
    judge = FeatureJudge(["alice", "edgar"], torch.tensor([1.0, 0.0]), torch.tensor([2.0, 1.0]),
                         torch.tensor([[1.0, 0.0], [0.0, 1.0]]), torch.tensor([0.0, 0.5]), block=4, decoder="x")
    h = torch.tensor([[3.0, 1.0]])  # standardised: (1, 1); z = (1, 1.5)
    z = torch.tensor([1.0, 1.5])
    torch.testing.assert_close(judge.log_probs_of(h)[0], z - torch.logsumexp(z, 0))
    judge.save(tmp_path)
    again = FeatureJudge.load(tmp_path)
    assert again.authors == judge.authors and again.block == 4 and again.decoder == "x"
    torch.testing.assert_close(again.log_probs_of(h), judge.log_probs_of(h))
    with pytest.raises(ValueError, match="no decoder"):
        again.log_probs(["some text"])


def test_the_probe_is_fitted_on_each_authors_books_cached_and_fitted_again_on_other_text(reader, tiny_llama_base,
                                                                                          corpus_mirror, monkeypatch,
                                                                                          tmp_path, capsys):
    from data.corpus import author_books
    from train.probe import training_passages

    monkeypatch.setenv("ALICE_EDGAR_CORPUS", str(corpus_mirror))
    books = shortened({a: author_books(a, "tail", reader.tok) for a in ("alice", "edgar")})
    passages = training_passages(reader.tok, books["alice"].train, 5)
    assert len(passages) == 5 and all(p in books["alice"].train_text for p in passages)
    judge, folder = load_feature_judge(["alice", "edgar"], "tail", books, FP32, tmp_path, tiny_llama_base)
    assert "fitting the probe" in capsys.readouterr().err and judge.reader is not None and judge.block == 2
    own = [judge.log_probs(training_passages(reader.tok, books[a].train, 8)).argmax(-1) for a in ("alice", "edgar")]
    assert (own[0] == 0).float().mean() > 0.6 and (own[1] == 1).float().mean() > 0.6  # it learned the two apart
    save_memo(judge, folder)  # what it read, kept beside it
    again, _ = load_feature_judge(["alice", "edgar"], "tail", books, FP32, tmp_path, tiny_llama_base)
    assert "fitting" not in capsys.readouterr().err and torch.equal(again.weight, judge.weight)  # from the cache
    assert again.reader.memo.keys() == judge.reader.memo.keys() and (folder / MEMO_FILE).exists()
    assert all(torch.equal(again.reader.memo[k], v) for k, v in judge.reader.memo.items())
    bf16 = Precision(torch.device("cpu"), "bf16", torch.bfloat16, 2.0, "the test asks for it")
    other, _ = load_feature_judge(["alice", "edgar"], "tail", books, bf16, tmp_path, tiny_llama_base)
    assert "fitting the probe" in capsys.readouterr().err and not other.reader.memo  # another precision: fitted again
    books["alice"].train = {"#other": books["alice"].train_text[: len(books["alice"].train_text) // 2]}
    other, _ = load_feature_judge(["alice", "edgar"], "tail", books, FP32, tmp_path, tiny_llama_base)
    assert "fitting the probe" in capsys.readouterr().err  # other training text: fitted again
    assert not other.reader.memo and not (folder / MEMO_FILE).exists()  # and what the old one read is gone


def test_the_report_reads_the_probe_beside_the_two_judges_and_mixes_the_three(reader, tiny_llama_base, make_tiny_judge,
                                                                             corpus_mirror, monkeypatch, tmp_path):
    from data.corpus import author_books
    from eval.authorship import authorship, judges_log_probs, mixed_log_probs, passages, table_lines
    from eval.pages import authorship_tables
    from model.ngram import train_ngram_judge
    from plumbing.judges import load_bert_judge

    monkeypatch.setenv("ALICE_EDGAR_CORPUS", str(corpus_mirror))
    judge, jtok, _ = load_bert_judge(make_tiny_judge(tmp_path) / "hf")
    books = shortened({a: author_books(a, "tail", jtok) for a in ("alice", "edgar")})
    nb = train_ngram_judge({a: b.train_text[:20000] for a, b in books.items()}, n_max=2)
    probe, _ = load_feature_judge(["alice", "edgar"], "tail", books, FP32, tmp_path, tiny_llama_base)
    r = authorship(judge, jtok, books, "tail", nb, lengths=(64,), per_author=4, probe=probe)["64"]
    assert [sum(row) for row in r["probe"]["confusion"]] == [4, 4] and len(r["mix_weights"]) == 3
    heldout = {a: b.heldout for a, b in books.items()}
    judges, y = judges_log_probs(judge, jtok, nb, heldout, 64, 4, "held-out", probe=probe)
    assert len(judges) == 3 and torch.equal(judges[2], probe.log_probs(passages(jtok, heldout, 64, 4)[1]))  # raw text
    mixed = mixed_log_probs(judges, r["mix_weights"]).argmax(-1)
    assert r["mix"]["confusion"] == [[int(((mixed == p) & (y == t)).sum()) for p in (0, 1)] for t in (0, 1)]
    assert "probe" in table_lines({"64": r}, ["alice", "edgar"])[0] and "mu" in table_lines({"64": r}, ["alice", "edgar"])[0]
    (_, rows, heads), = authorship_tables({"64": r}, ["alice", "edgar"])
    assert len(heads) == 5 and "SmolLM2" in heads[3] and heads[4].startswith("all three")
