"""scripts/probe_books.py: its folds, its balanced training set, its accuracies (the features themselves: Llama.hidden_states
in tests/test_llama.py, the probe in tests/test_probe.py)."""

import pytest
import torch

from data.authors import AUTHORS, BUILT_IN, split_books
from scripts.probe_books import accuracies, balanced_training_set, fold_books, parse_judges


def test_fold_one_is_the_book_split_and_every_fold_holds_out_one_book_each_never_trained_on():
    for author in BUILT_IN:
        assert fold_books(1)[author] == (list(split_books(author, "book")[0]), split_books(author, "book")[1])
    for k in (1, 2, 3):
        for author, (training, heldout) in fold_books(k).items():
            every = {*AUTHORS[author].books, *AUTHORS[author].more_books}
            assert heldout not in training and {*training, heldout} == every
    assert fold_books(2)["alice"][1] == 12 and fold_books(3)["alice"][1] == 29042  # Looking-Glass, A Tangled Tale
    with pytest.raises(ValueError, match="alice has 3 books"):
        fold_books(4)


def test_each_author_trains_on_as_many_passages_taken_from_all_its_books():
    features = {"a1": torch.zeros(4, 2), "a2": torch.ones(6, 2), "b1": torch.full((3, 2), 5.0)}
    x, y = balanced_training_set(features, {"a": (["a1", "a2"], "a3"), "b": (["b1"], "b2")})
    assert y.tolist() == [0, 0, 0, 1, 1, 1]
    assert x[:3, 0].tolist() == [0.0, 1.0, 1.0]  # evenly over a1's then a2's passages (rows 0, 4, 9 of 10)
    assert x[3:, 0].tolist() == [5.0, 5.0, 5.0]


def test_accuracies_count_each_authors_passages_named_for_it():
    log_probs = {"a": torch.tensor([[0.0, -1.0], [-1.0, 0.0]]).log_softmax(-1), "b": torch.tensor([[-2.0, 0.0]])}
    r = accuracies(log_probs)
    assert r["per_author"] == {"a": 0.5, "b": 1.0} and r["macro"] == 0.75


def test_judges_are_given_as_fold_equals_run():
    assert parse_judges(["1=runs/judge/latest", "3=/tmp/x"]) == {1: "runs/judge/latest", 3: "/tmp/x"}
    with pytest.raises(ValueError, match="FOLD=RUN"):
        parse_judges(["runs/judge/latest"])
