"""An answer worth acting on, on synthetic predictions and studies: intervals and paired verdicts that can say
tied, choices made on validation only, the ensemble kept only when it wins, importance against a dummy knob,
and sweet spots flagged at the edge."""

import numpy as np
import optuna
import pytest
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from search.analysis import ensemble as ensembles
from search.analysis.importance import DETECT, MIN_TRIALS, REFITS, knob_importance
from search.analysis.knobs import knob_rows
from search.analysis.leaderboard import build, write_leaderboard
from search.analysis.rows import Row, compare
from search.analysis.stats import holm, metric_intervals, paired
from search.analysis.tables import knob_table
from search.store.layout import Predictions, RunDir
from search.store.records import SUMMARY_FORMAT, Baseline, Retrain, SeedRun, Summary, TrialCounts
from search.tune import save_ensemble_bundle

N = 500


def labels_of(n: int = N, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, 2, n)


def probs_right(labels: np.ndarray, right: np.ndarray, confidence: float = 0.8) -> np.ndarray:
    """(texts, 2) probabilities that put `confidence` on the label where right, on the other class
    elsewhere."""
    out = np.full((len(labels), 2), 1 - confidence)
    target = np.where(right, labels, 1 - labels)
    out[np.arange(len(labels)), target] = confidence
    return out


def row(name: str, labels: np.ndarray, right: np.ndarray, val_acc: float, kind: str = "model") -> Row:
    r = Row(name, kind, val=np.full((10, 2), 0.5), val_accuracy=val_acc, val_loss=0.5)
    r.test_probs = probs_right(labels, right)[None]
    r.stats["test"] = {"accuracy": float(right.mean()), "f1": 0.0}
    return r


def test_one_text_in_500_is_tied_and_a_row_far_below_is_below(tmp_path):
    labels = labels_of()
    right = np.random.default_rng(1).random(N) < 0.85
    nearly = right.copy()
    nearly[np.flatnonzero(right)[0]] = False  # one text in 500 apart
    far = np.random.default_rng(2).random(N) < 0.70
    rows = [
        row("best", labels, right, 0.86),
        row("near", labels, nearly, 0.85),
        row("far", labels, far, 0.70),
    ]
    best = compare(RunDir(tmp_path), rows, {"val": labels[:10], "test": labels}, 2)
    assert best.name == "best" and rows[0].stats["vs_best"]["verdict"] == "best"
    near, far_stats = rows[1].stats["vs_best"], rows[2].stats["vs_best"]
    assert near["verdict"] == "tied" and near["diff"] == pytest.approx(-1 / N) and near["p_value"] == 1.0
    assert near["low"] <= near["diff"] <= near["high"] <= 0
    assert far_stats["verdict"] == "below" and far_stats["p_value"] < 0.05 and far_stats["high"] < 0
    low, high = rows[0].stats["test_ci"]["accuracy"]
    assert low < right.mean() < high and 0.02 < high - low < 0.09  # ~±1.6 points on 500 texts


def test_paired_statistics_match_their_definitions():
    labels = labels_of()
    a = np.random.default_rng(3).random(N) < 0.8
    b = np.random.default_rng(4).random(N) < 0.8
    found = paired(a, b)
    assert found["diff"] == pytest.approx(a.mean() - b.mean())
    from scipy.stats import binomtest

    assert found["p_value"] == pytest.approx(binomtest(int((a & ~b).sum()), int((a ^ b).sum()), 0.5).pvalue)
    assert holm([0.01, 0.04, 0.03, 0.5]) == pytest.approx([0.04, 0.09, 0.09, 0.5])
    preds = np.where(np.random.default_rng(5).random((3, N)) < 0.8, labels, 1 - labels)
    ci = metric_intervals(preds, labels, 2)
    mean = (preds == labels).mean()
    assert ci["accuracy"][0] < mean < ci["accuracy"][1]


def write_sweep(run: RunDir, models: dict, baseline_right: np.ndarray, labels: dict) -> None:
    """A run directory of finished models from synthetic predictions: models {name: (val right, test
    right)}."""
    for name, (val_right, test_right) in models.items():
        folder = run.model(name)
        for split, right in (("val", val_right), ("test", test_right)):
            folder.write_predictions(
                "tuned", split, Predictions(probs_right(labels[split], right)[None], labels[split], [42])
            )
        test = {"accuracy": float(test_right.mean()), "precision": 0.5, "recall": 0.5, "f1": 0.5}
        retrain = Retrain.of([SeedRun(42, test, 1, 1, 0.5, [], 1.0, 1.0, False, False, 1, 1)])
        summary = Summary(
            name,
            "synthetic",
            TrialCounts(1, 0, 0, 1),
            "t",
            {},
            0.5,
            0.8,
            1.0,
            retrain,
            {"label_names": ["a", "b"]},
            format=SUMMARY_FORMAT,
        )
        folder.write_summary(summary)
    for split in ("val", "test"):
        run.write_baseline_predictions(
            split, Predictions(probs_right(labels[split], baseline_right[split])[None], labels[split], [42])
        )
    run.write_baseline(Baseline("tfidf+logreg", 1.0, 0.7, {"accuracy": 0.7, "f1": 0.7}, 10, 1.0, 1.0))


def test_the_best_row_predicts_default_and_ensemble_ignore_test(tmp_path):
    from configs.errors import UserError
    from search.predict import best_model

    labels = {"val": labels_of(400, 10), "test": labels_of(N, 11)}
    rng = np.random.default_rng(12)
    val = {m: rng.random(400) < acc for m, acc in (("lstm", 0.82), ("rnn", 0.78), ("transformer", 0.76))}
    test = {m: rng.random(N) < acc for m, acc in (("lstm", 0.80), ("rnn", 0.78), ("transformer", 0.79))}
    baseline = {"val": rng.random(400) < 0.75, "test": rng.random(N) < 0.85}
    run = RunDir(tmp_path / "runs" / "synthetic")
    write_sweep(run, {m: (val[m], test[m]) for m in val}, baseline, labels)
    before = build(run)
    decided = (before.best.name, before.served, before.ensemble.kept, before.ensemble.weights)
    assert before.best.name == before.served == "ensemble" and before.ensemble.kept  # independent errors
    # Only test changes: the validation winner's test predictions become the worst, another's perfect.
    test = {"lstm": rng.random(N) < 0.55, "rnn": np.ones(N, bool), "transformer": rng.random(N) < 0.60}
    write_sweep(
        run, {m: (val[m], test[m]) for m in val}, {"val": baseline["val"], "test": ~baseline["test"]}, labels
    )
    after = build(run)
    assert (after.best.name, after.served, after.ensemble.kept, after.ensemble.weights) == decided
    assert after.rows[0].stats["test_ci"] != before.rows[0].stats["test_ci"]  # test did change
    # search.predict reads the default the leaderboard recorded; none is recorded before the report runs
    with pytest.raises(UserError, match="has no leaderboard that names the default model"):
        best_model(run)
    # The report writes no model: the ensemble is saved by the sweep's own step (search.tune).
    write_leaderboard(run, plots=False)
    assert run.read_leaderboard()["predict_default"] == "ensemble" and not run.ensemble.root.exists()
    with pytest.raises(UserError, match="the sweep has not saved it yet"):
        best_model(run)
    save_ensemble_bundle(after)
    assert best_model(run) == "ensemble"


def test_the_ensemble_is_kept_only_when_it_wins_on_cross_fitted_validation():
    labels = labels_of(600, 20)
    rng = np.random.default_rng(21)
    # Three models with independent errors: their vote is right more often than any one of them.
    independent = {m: probs_right(labels, rng.random(600) < 0.75, 0.7) for m in ("a", "b", "c")}
    kept = ensembles.choose(independent, labels)
    assert kept.kept and len(kept.weights) > 1 and kept.crossfit_val_accuracy > kept.best_single_val_accuracy
    # One good model and a copy of its mistakes that is only less sure: adding it cannot help.
    good = probs_right(labels, rng.random(600) < 0.8, 0.9)
    worse = 0.5 + (good - 0.5) * 0.2
    dropped = ensembles.choose({"good": good, "worse": worse}, labels)
    assert not dropped.kept and dropped.best_single == "good"


def completed_study(trials: list[tuple[dict, float]], dists: dict) -> optuna.Study:
    """An in-memory study of COMPLETE trials, each with its loss as the best validation loss, as a sweep's
    study holds them."""
    study = optuna.create_study()
    study.add_trials(
        [
            create_trial(
                state=TrialState.COMPLETE,
                value=loss,
                params=params,
                distributions=dists,
                user_attrs={"best_val_loss": loss},
            )
            for params, loss in trials
        ]
    )
    return study


def synthetic_study(n: int, seed: int = 0) -> optuna.Study:
    """Twelve knobs, of which model.dropout alone sets the loss (plus noise); lr's best values sit at its
    top."""
    rng = np.random.default_rng(seed)
    dists = {f"model.k{i}": FloatDistribution(0.0, 1.0) for i in range(8)}
    dists |= {
        "model.dropout": FloatDistribution(0.0, 0.6),
        "train.lr": FloatDistribution(1e-4, 1e-2, log=True),
    }
    dists |= {
        "model.hidden_dim": CategoricalDistribution([32, 64, 128]),
        "model.pooling": CategoricalDistribution(["mean", "max"]),
    }
    trials = []
    for _ in range(n):
        params = {
            k: (
                float(rng.uniform(d.low, d.high))
                if isinstance(d, FloatDistribution)
                else d.choices[rng.integers(len(d.choices))]
            )
            for k, d in dists.items()
        }
        loss = 0.4 + 0.5 * (params["model.dropout"] - 0.1) ** 2 + 0.002 * rng.standard_normal()
        trials.append((params, loss))
    return completed_study(trials, dists)


def test_the_dummy_sets_the_bar_where_one_knob_alone_sets_the_loss():
    study = synthetic_study(30)
    trials = [(t.params, t.distributions, t.value) for t in study.trials]
    knobs = list(study.trials[0].params)
    found = knob_importance(trials, knobs)
    assert found["knobs"]["model.dropout"]["effect"] == "detected"
    assert found["knobs"]["model.dropout"]["beats_dummy"] >= DETECT and found["refits"] == REFITS >= 200
    others = [k for k in knobs if k != "model.dropout"]
    assert all(found["knobs"][k]["effect"] == "no detectable effect" for k in others)
    assert all(found["knobs"][k]["beats_dummy"] < DETECT for k in others)
    # shares among the real knobs: they add up to 1, the dummies left out
    assert sum(v["importance"] for v in found["knobs"].values()) == pytest.approx(1, abs=0.15)
    assert found["dummy"]["median"] < found["knobs"]["model.dropout"]["importance_low"]
    assert all(
        0
        <= found["knobs"][k]["importance_low"]
        <= found["knobs"][k]["importance"]
        <= found["knobs"][k]["importance_high"]
        for k in knobs
    )


def test_too_few_trials_show_no_importance():
    study = synthetic_study(MIN_TRIALS - 1)
    trials = [(t.params, t.distributions, t.value) for t in study.trials]
    found = knob_importance(trials, list(study.trials[0].params))
    assert found["note"] == f"not enough trials ({MIN_TRIALS - 1} of {MIN_TRIALS})"
    assert all(v["importance"] is None for v in found["knobs"].values())


def edge_study() -> optuna.Study:
    """The loss falls as lr rises to its bound: every good trial sits at the top of the range."""
    rng = np.random.default_rng(5)
    dists = {
        "train.lr": FloatDistribution(1e-4, 1e-2, log=True),
        "model.dropout": FloatDistribution(0.0, 0.6),
    }
    trials = []
    for i in range(20):
        lr = float(10 ** (-4 + 2 * (i / 19) ** 0.5))  # more trials near the top, as TPE would put them
        params = {"train.lr": lr, "model.dropout": float(rng.uniform(0, 0.6))}
        loss = 0.5 - 0.05 * (np.log10(lr) + 4)
        trials.append((params, loss))
    return completed_study(trials, dists)


def test_a_sweet_spot_at_a_bound_is_flagged_edge_and_a_knob_without_effect_gets_no_flag():
    rows, _ = knob_rows(edge_study(), {"train.lr": 1e-2})
    by_knob = {r["knob"]: r for r in rows}
    assert by_knob["train.lr"]["effect"] == "detected"
    assert by_knob["train.lr"]["edge"] and not by_knob["train.lr"]["broad"]
    assert by_knob["train.lr"]["sweet_spot"][1] == pytest.approx(1e-2)
    # dropout does nothing: no detected effect, so no sweet spot to flag, and the table says any value
    assert by_knob["model.dropout"]["effect"] == "no detectable effect"
    assert not by_knob["model.dropout"]["edge"] and not by_knob["model.dropout"]["broad"]
    table = {r[0]: r for r in knob_table({"knobs": rows})}
    assert table["model.dropout"][3] == "any, within noise" and "edge: widen" in table["train.lr"][5]


def choice_study(signal: bool, n: int = 24, seed: int = 7) -> optuna.Study:
    """hidden_dim (an ordered choice) sets the loss when signal: its top value is best; three other knobs
    never matter. Without signal no knob matters: a null study with noise of a real sweep's size."""
    rng = np.random.default_rng(seed)
    dists = {
        "model.hidden_dim": CategoricalDistribution([32, 64, 128]),
        "model.pooling": CategoricalDistribution(["last", "mean", "max"]),
        "model.dropout": FloatDistribution(0.0, 0.6),
        "train.lr": FloatDistribution(3e-4, 1e-2, log=True),
    }
    trials = []
    for _ in range(n):
        params = {
            k: (
                float(
                    np.exp(rng.uniform(np.log(d.low), np.log(d.high)))
                    if d.log
                    else rng.uniform(d.low, d.high)
                )
                if isinstance(d, FloatDistribution)
                else d.choices[rng.integers(len(d.choices))]
            )
            for k, d in dists.items()
        }
        effect = {32: 0.04, 64: 0.02, 128: 0.0}[params["model.hidden_dim"]] if signal else 0.0
        loss = 0.5 + effect + 0.004 * rng.standard_normal()
        trials.append((params, loss))
    return completed_study(trials, dists)


def test_a_choice_knob_that_matters_is_flagged_at_its_edge_and_a_null_study_flags_nothing():
    rows, _ = knob_rows(choice_study(signal=True), {})
    by_knob = {r["knob"]: r for r in rows}
    assert by_knob["model.hidden_dim"]["effect"] == "detected" and by_knob["model.hidden_dim"]["edge"]
    assert all(not r["edge"] and not r["broad"] for k, r in by_knob.items() if k != "model.hidden_dim")
    null_rows, importance = knob_rows(choice_study(signal=False, seed=8), {})
    assert importance["scored"] == 24 and importance.get("note") is None
    assert all(r["effect"] == "no detectable effect" for r in null_rows)
    assert all(not r["edge"] and not r["broad"] for r in null_rows)


def test_ped_anova_needs_five_trials_in_its_top_quantile():
    from search.analysis.importance import PED_TOP, ped_anova

    study = synthetic_study(30)
    trials = [(t.params, t.distributions, t.value) for t in study.trials]
    knobs = list(study.trials[0].params)
    assert ped_anova(trials[: 2 * PED_TOP - 1], knobs) is None
    found = ped_anova(trials, knobs)
    assert found and max(found, key=found.get) == "model.dropout"


def test_inside_its_noise_stays_quiet_under_the_null_and_speaks_beyond_it():
    """The "inside its own noise" flag has a null: configurations that differ only by training seed (normal
    noise of the retrains' sd) are called inside about 95% of the time; trials that really differ are not."""
    from search.analysis.knobs import inside_noise
    from search.analysis.tables import _noise_notes

    rng = np.random.default_rng(0)
    sd = 0.01
    beyond = [
        not inside_noise(list(0.5 + sd * rng.standard_normal(20)), (sd, 4))["inside"] for _ in range(400)
    ]
    assert 0.02 <= np.mean(beyond) <= 0.08  # 5% expected
    spread = list(0.5 + np.linspace(0, 0.1, 20) + 0.002 * rng.standard_normal(20))
    found = inside_noise(spread, (0.002, 4))
    assert not found["inside"] and found["lead"] > found["null_lead"]
    assert "beyond its noise" in _noise_notes("lstm", found)[0]
    assert "inside its own noise" in _noise_notes("lstm", inside_noise([0.5, 0.501, 0.5005], (0.01, 2)))[0]
    assert inside_noise([0.5, 0.6], (0.01, 2)) is None and inside_noise([0.5, 0.6, 0.7], None) is None


def test_every_refit_draws_fresh_dummies_on_the_same_trials_and_ped_anova_keeps_five_on_top(monkeypatch):
    """The null is the distribution of irrelevant knobs, not one draw: each refit gets new dummy columns;
    the trials are not resampled outside the forest (which bootstraps them itself); PED-ANOVA's top
    quantile holds at least PED_TOP trials."""
    from search.analysis import importance

    seen = []
    real_study = importance._study

    def spy(trials, dummies=None):
        seen.append((tuple(repr(t[0]) for t in trials), None if dummies is None else dummies.copy()))
        return real_study(trials, dummies)

    monkeypatch.setattr(importance, "_study", spy)
    quantiles = []
    real_ped = importance.PedAnovaImportanceEvaluator

    def ped_spy(target_quantile):
        quantiles.append(target_quantile)
        return real_ped(target_quantile=target_quantile)

    monkeypatch.setattr(importance, "PedAnovaImportanceEvaluator", ped_spy)
    study = synthetic_study(MIN_TRIALS)
    trials = [(t.params, t.distributions, t.value) for t in study.trials]
    importance.refit_importance(trials, list(study.trials[0].params), refits=5)
    fits = [s for s in seen if s[1] is not None]
    assert len(fits) == 5 and all(f[0] == tuple(repr(t[0]) for t in trials) for f in fits)
    assert all(not np.allclose(fits[0][1], f[1]) for f in fits[1:])
    importance.ped_anova(trials, list(study.trials[0].params))
    assert quantiles and quantiles[-1] * len(trials) >= importance.PED_TOP


def test_holm_feeds_the_verdicts_and_a_row_can_be_above(tmp_path):
    """Three rows against the best: one is clearly better on test (above), two differ from it by an amount
    whose raw p-value is under 0.05 but whose Holm-adjusted one is not: the verdict follows the adjusted."""
    labels = labels_of(N, 30)
    rng = np.random.default_rng(31)
    best = rng.random(N) < 0.75
    better = best | (rng.random(N) < 0.5)  # right wherever best is, and on half of the rest
    rows = [row("best", labels, best, 0.9), row("better", labels, better, 0.8)]
    for k in range(2):  # 6 texts wrong that the best got right, none the other way: McNemar p = 2/64
        right = best.copy()
        right[np.flatnonzero(best)[6 * k : 6 * k + 6]] = False
        rows.append(row(f"near{k}", labels, right, 0.7))
    compare(RunDir(tmp_path), rows, {"val": labels[:10], "test": labels}, 2)
    assert rows[1].stats["vs_best"]["verdict"] == "above" and rows[1].stats["vs_best"]["diff"] > 0
    near = [r.stats["vs_best"] for r in rows[2:]]
    assert all(n["p_raw"] == pytest.approx(2 / 64) for n in near)  # raw, both would be below
    assert all(n["p_value"] == pytest.approx(2 * 2 / 64) for n in near)  # Holm: the 2nd and 3rd of three
    assert all(n["p_value"] >= 0.05 and n["verdict"] == "tied" for n in near)


def test_intervals_have_their_level_and_macro_f1_counts_only_classes_present():
    """The accuracy interval's width matches the normal approximation's within 10%; a 3-class macro F1 and
    its interval agree with scikit-learn's, which leaves out a class absent from labels and predictions."""
    from sklearn.metrics import f1_score

    from search.analysis.stats import f1_scores

    labels = labels_of(2000, 40)
    preds = np.where(np.random.default_rng(41).random(2000) < 0.8, labels, 1 - labels)
    low, high = metric_intervals(preds[None], labels, 2)["accuracy"]
    p = (preds == labels).mean()
    normal = 2 * 1.96 * np.sqrt(p * (1 - p) / len(labels))
    assert abs((high - low) - normal) <= 0.1 * normal
    three = np.random.default_rng(42).integers(0, 2, 300)  # class 2 in neither labels nor predictions
    guess = np.where(np.random.default_rng(43).random(300) < 0.7, three, 1 - three)
    assert f1_scores(guess, three, 3) == pytest.approx(f1_score(three, guess, average="macro"))
    f1_low, f1_high = metric_intervals(guess[None], three, 3)["f1"]
    assert f1_low <= f1_score(three, guess, average="macro") <= f1_high


def test_the_ensemble_is_judged_out_of_fold_over_repeated_splits():
    """The figures that decide are out of fold: each text scored by weights fitted without its fold, over
    REPEATS shuffled splits (recomputed here by hand); in-sample scoring would give another number. A gain
    whose paired interval reaches 0 is not kept."""
    from sklearn.model_selection import StratifiedKFold

    from search.core.served import combine

    rng = np.random.default_rng(0)
    n = 200
    labels = rng.integers(0, 2, n)
    probs = {"best": probs_right(labels, rng.random(n) < 0.7, 0.55)}
    for k in range(8):  # members that know nothing
        p = rng.random(n)
        probs[f"noise{k}"] = np.column_stack([1 - p, p])
    chosen = ensembles.choose(probs, labels)
    by_hand = []
    for r in range(ensembles.REPEATS):
        right = np.empty(n, dtype=bool)
        for fit, score in StratifiedKFold(ensembles.FOLDS, shuffle=True, random_state=r).split(
            labels, labels
        ):
            w = ensembles.greedy_weights({m: p[fit] for m, p in probs.items()}, labels[fit])
            right[score] = combine({m: probs[m][score] for m in w}, w).argmax(1) == labels[score]
        by_hand.append(right.mean())
    assert chosen.crossfit_val_accuracy == pytest.approx(np.mean(by_hand))
    fitted = ensembles.greedy_weights(probs, labels)
    in_sample = (combine({m: probs[m] for m in fitted}, fitted).argmax(1) == labels).mean()
    assert abs(in_sample - chosen.crossfit_val_accuracy) > 0.02
    assert not chosen.kept and chosen.gain[1] <= 0 and chosen.weights == fitted


def test_the_baselines_c_is_chosen_by_cross_validation_on_train(imdb_small):
    """C is the grid's best 5-fold cross-validated accuracy on the training texts, the vectorizer refitted
    per fold (GridSearchCV over the same pipeline agrees), and the validation labels play no part."""
    import dataclasses

    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression
    from sklearn.model_selection import GridSearchCV, StratifiedKFold
    from sklearn.pipeline import Pipeline

    from search.sweep.baseline import C_GRID, VECTORIZER, tfidf_baseline

    row, kept, _ = tfidf_baseline(imdb_small, "imdb")
    labels = imdb_small.train.labels.numpy()
    pipeline = Pipeline(
        [("tfidf", TfidfVectorizer(**VECTORIZER)), ("lr", LogisticRegression(max_iter=2000, random_state=42))]
    )
    grid = GridSearchCV(
        pipeline, {"lr__C": list(C_GRID)}, cv=StratifiedKFold(5, shuffle=True, random_state=42)
    ).fit(list(imdb_small.train.texts), labels)
    scores = grid.cv_results_["mean_test_score"]
    assert row.C == min(C_GRID, key=lambda c: (-round(scores[C_GRID.index(c)], 9), c))
    flipped = dataclasses.replace(imdb_small.val, labels=1 - imdb_small.val.labels)
    again, _, _ = tfidf_baseline(dataclasses.replace(imdb_small, val=flipped), "imdb")
    assert again.C == row.C and again.val_accuracy == pytest.approx(1 - row.val_accuracy)
    assert row.val_accuracy == pytest.approx((kept["val"].probs[0].argmax(1) == kept["val"].labels).mean())
