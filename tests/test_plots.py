"""What each plot draws, read back from its figure: every curve is the numbers of the metrics it names.

The figures are caught before they are written (eval/plots.py:save_figure), so a curve drawn from the
wrong key, the wrong author or without its smoothing fails here; the PNG files themselves are checked
by the programs' own tests.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from eval import plots
from eval.smoothing import mean_smooth


@pytest.fixture
def drawn(monkeypatch) -> dict:
    """The figure each plot function makes, under drawn["fig"], instead of a file."""
    caught = {}

    def keep(fig, path):
        caught["fig"] = fig
        return Path(path)

    monkeypatch.setattr(plots, "save_figure", keep)
    return caught


def curves(fig) -> dict[str, list[float]]:
    """label -> y values of every labelled line of every axis of the figure."""
    return {line.get_label(): [float(v) for v in line.get_ydata()]
            for ax in fig.axes for line in ax.lines if not line.get_label().startswith("_")}


TRAIN = [{"step": s, "loss_alice": a, "loss_edgar": e, "reward_alice": -a, "reward_edgar": -e}
         for s, a, e in [(1, 5.0, 6.0), (2, 4.0, 5.5), (3, 4.5, 5.0), (4, 3.0, 4.0)]]
EVALS = [{"step": s, "heldout_alice": ha, "heldout_edgar": he, "acc": acc, "acc_low": acc - 0.2, "acc_high": acc + 0.1,
          "S_alice": sa, "S_edgar": se, "nb_S_alice": nsa, "nb_S_edgar": nse, "judge_loss": jl, "reward_alice": ra,
          "reward_edgar": re, "kl_alice": ka, "kl_edgar": ke, "distinct2_alice": da, "distinct2_edgar": de}
         for s, ha, he, acc, sa, se, nsa, nse, jl, ra, re, ka, ke, da, de in [
             (0, 5.5, 6.1, 0.5, 0.6, 0.55, 0.5, 0.45, 0.69, -0.5, -0.8, 0.0, 0.0, 0.9, 0.8),
             (2, 5.0, 5.9, 0.75, 0.8, 0.3, 0.7, 0.35, 0.5, -0.2, -0.4, 0.01, 0.02, 0.85, 0.82),
             (4, 4.6, 5.7, 0.875, 0.9, 0.1, 0.8, 0.2, 0.3, -0.1, -0.1, 0.03, 0.05, 0.8, 0.7)]]


def column(key: str) -> list[float]:
    return [r[key] for r in EVALS]


def test_coevolve_plot_draws_b2_b11_b12_b13_from_the_records(drawn, tmp_path) -> None:
    plots.coevolve_plot(TRAIN, EVALS, ["alice", "edgar"], "t", tmp_path / "p.png")
    c = curves(drawn["fig"])
    assert c["alice generator: training loss (B2)"] == pytest.approx(mean_smooth([5.0, 4.0, 4.5, 3.0], k=3))
    assert c["edgar generator: held-out loss on edgar"] == column("heldout_edgar")
    assert c["judge accuracy (B11), band: Wilson 95 %"] == column("acc")
    assert c["S(t) = P(alice | X_t), edgar generator (B13/N6)"] == column("S_edgar")
    assert c["judge loss L_cls (B12)"] == column("judge_loss")
    n_gram = [y for label, y in c.items() if label == "the same, independent n-gram judge (N5)"]
    assert n_gram == [column("nb_S_edgar")]  # labels repeat: the dict keeps the last author's
    [band_ax] = [ax for ax in drawn["fig"].axes if ax.collections]  # the accuracy axis holds the Wilson band
    band = band_ax.collections[0].get_paths()[0].vertices[:, 1]  # its outline
    assert min(band) == pytest.approx(min(column("acc_low"))) and max(band) == pytest.approx(max(column("acc_high")))


def test_teach_plot_draws_t1_t3_t8_and_both_judges_from_the_records(drawn, tmp_path) -> None:
    plots.teach_plot(TRAIN, EVALS, ["alice", "edgar"], "t", tmp_path / "p.png")
    c = curves(drawn["fig"])
    assert c["alice: reward log P(alice) (T1), A9-smoothed"] == pytest.approx(mean_smooth([-5.0, -4.0, -4.5, -3.0], 3))
    assert c["edgar: KL per token (T3)"] == column("kl_edgar")
    assert c["alice generator, trained judge"] == column("S_alice")
    assert c["edgar generator, n-gram judge (N5)"] == column("nb_S_edgar")
    assert c["edgar: held-out LM loss (B2)"] == column("heldout_edgar")
    assert c["alice: distinct-2 (T8)"] == column("distinct2_alice")


def test_an_rl_runs_plots_name_its_own_loss_and_keep_it_off_the_lm_loss_axis(drawn, tmp_path) -> None:
    """The RL loss (T6, near 0) is not drawn as a "training loss (B2)" beside the held-out LM loss."""
    rl_train = [dict(r, lm_loss_alice=3 + r["loss_alice"], lm_loss_edgar=3 + r["loss_edgar"]) for r in TRAIN]
    plots.coevolve_plot(rl_train, EVALS, ["alice", "edgar"], "t", tmp_path / "p.png", lm_loss=None)
    c = curves(drawn["fig"])
    assert not any("training loss" in label for label in c) and c["edgar generator: held-out loss on edgar"]
    plots.coevolve_plot(rl_train, EVALS, ["alice", "edgar"], "t", tmp_path / "p.png", lm_loss=("lm_loss", "T9 L_gen"))
    assert curves(drawn["fig"])["alice generator: T9 L_gen"] == pytest.approx(mean_smooth([8.0, 7.0, 7.5, 6.0], k=3))
    plots.teach_plot(rl_train, EVALS, ["alice", "edgar"], "t", tmp_path / "p.png", step_loss="RL loss (T6)")
    fig = drawn["fig"]
    assert curves(fig)["edgar generator: RL loss (T6)"] == pytest.approx(mean_smooth([6.0, 5.5, 5.0, 4.0], k=3))
    assert fig.axes[3].get_ylabel() == "loss of the step"  # its own panel


def test_adversary_plot_draws_the_game_from_the_records(drawn, tmp_path) -> None:
    train = [dict(r, adv_acc=acc, adv_acc_real=acc + 0.1, adv_acc_generated=acc - 0.1)
             for r, acc in zip(TRAIN, [0.5, 0.8, 0.7, 0.6])]
    evals = [dict(r, adv_p_generated_alice=p, adv_p_generated_edgar=p / 2, own_alice=r["S_alice"],
                  own_edgar=1 - r["S_edgar"]) for r, p in zip(EVALS, [0.1, 0.6, 0.3])]
    plots.adversary_plot(train, evals, ["alice", "edgar"], "t", tmp_path / "p.png")
    c = curves(drawn["fig"])
    assert c["real vs generated, balanced"] == pytest.approx(mean_smooth([0.5, 0.8, 0.7, 0.6], k=3))
    assert c["on generated rows"] == pytest.approx([0.4, 0.7, 0.6, 0.5])
    assert c["edgar generator: P(generated), adversarial judge (T10)"] == [0.05, 0.3, 0.15]
    assert c["edgar generator: P(edgar), the lecture's frozen judge (N6)"] == pytest.approx([0.45, 0.7, 0.9])


def test_confusion_plot_shows_each_count_and_its_row_share(drawn, tmp_path) -> None:
    plots.confusion_plot([[3, 1], [0, 4]], ["alice", "edgar"], "t", tmp_path / "p.png")
    ax = drawn["fig"].axes[0]
    assert [t.get_text() for t in ax.texts] == ["3", "1", "0", "4"]  # row by row: true author, then predicted
    assert ax.images[0].get_array().tolist() == [[0.75, 0.25], [0.0, 1.0]]


def test_pretrain_plot_draws_the_batch_loss_and_each_authors_held_out_loss(drawn, tmp_path) -> None:
    train = [{"step": s, "loss": l} for s, l in [(1, 6.0), (2, 5.0), (3, 4.5)]]
    evals = [{"step": 0, "heldout": {"alice": 6.2, "edgar": 6.4}}, {"step": 3, "heldout": {"alice": 4.9, "edgar": 5.3}}]
    plots.pretrain_plot(train, evals, {"alice": 4.8, "edgar": 5.2}, "t", tmp_path / "p.png")
    c = curves(drawn["fig"])
    assert c["train batch loss (B2)"] == [6.0, 5.0, 4.5]
    assert c["held-out loss, edgar"] == [6.4, 5.3]
    assert c["final held-out loss, alice (all windows)"] == [4.8, 4.8]  # a horizontal line at the final value
