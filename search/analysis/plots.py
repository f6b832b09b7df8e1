"""The sweep as pictures, PNGs in runs/<name>/plots/: per model the search's history, the knobs' importance,
validation loss against each knob with its sweet spot, the retrained best configuration's learning curves
and its confusion matrices; for the sweep, test accuracy against size and against speed."""

import warnings
from pathlib import Path

import matplotlib

matplotlib.use("Agg")  # files only: no display on a server, and no GUI toolkit needed

import matplotlib.pyplot as plt  # noqa: E402
import numpy as np  # noqa: E402
import optuna  # noqa: E402
from matplotlib.ticker import NullFormatter  # noqa: E402
from optuna.distributions import CategoricalDistribution, FloatDistribution  # noqa: E402
from sklearn.metrics import ConfusionMatrixDisplay  # noqa: E402

from search.analysis.knobs import distributions, scored_trials, scored_view, top_trials  # noqa: E402
from search.store import files  # noqa: E402
from search.store.layout import RunDir  # noqa: E402
from search.store.records import Retrain  # noqa: E402

DPI = 100


def _save(fig, path: Path) -> Path:
    fig.tight_layout()
    try:
        files.write_with(path, lambda tmp: fig.savefig(tmp, dpi=DPI, format="png"))
    finally:
        plt.close(fig)
    return path


def history(study: optuna.Study, path: Path) -> Path | None:
    view = scored_view(study)
    if not view.trials:
        return None
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # Optuna marks its matplotlib plots experimental
        ax = optuna.visualization.matplotlib.plot_optimization_history(view, target_name="best val loss")
    ax.set_title(f"{study.study_name}: best val loss per trial (stopped ones at theirs)", fontsize=10)
    ax.figure.set_size_inches(8, 4)
    return _save(ax.figure, path)


def importance(model: str, knob_rows: list[dict], dummy: dict | None, path: Path) -> Path | None:
    """Each knob's share of importance (fANOVA's median over refits with fresh dummies) with its 80% interval,
    most important on top, and the best dummy's interval shaded (a knob is detected where it beats the dummy
    in 90% of the refits)."""
    rows = [r for r in knob_rows if r["importance"] is not None]
    if not rows:
        return None
    fig, ax = plt.subplots(figsize=(7, 0.8 + 0.32 * len(rows)))
    rows = list(reversed(rows))
    values = [r["importance"] for r in rows]
    errors = [
        [r["importance"] - r["importance_low"] for r in rows],
        [r["importance_high"] - r["importance"] for r in rows],
    ]
    colors = ["tab:blue" if r["effect"] == "detected" else "tab:gray" for r in rows]
    ax.barh([r["knob"] for r in rows], values, xerr=errors, color=colors, ecolor="black", capsize=2)
    if dummy:
        ax.axvspan(
            dummy["low"], dummy["high"], color="tab:red", alpha=0.15, label="dummy knob (random values)"
        )
        ax.legend(fontsize=7, loc="lower right")
    ax.set_xlabel(
        "share of the variance of the best val loss (fANOVA; 80% bootstrap interval; grey: no detectable "
        "effect)"
    )
    ax.set_title(f"{model}: hyperparameter importance", fontsize=10)
    ax.set_xlim(0, max(r["importance_high"] for r in rows) * 1.1 or 1)
    return _save(fig, path)


def knobs(study: optuna.Study, chosen: dict, spots: dict, path: Path) -> Path | None:
    """Best validation loss against each knob: every scored trial, the best quarter in colour, the sweet
    spot shaded, the chosen value as a dashed line."""
    trials = scored_trials(study)
    dists = distributions(study)
    if not trials or not dists:
        return None
    best = {t.number for t in top_trials(study)}
    cols = min(4, len(dists))
    rows = -(-len(dists) // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(3.4 * cols, 2.8 * rows), squeeze=False)
    for ax, (key, dist) in zip(axes.flat, dists.items()):
        categorical = isinstance(dist, CategoricalDistribution)
        place = (lambda v: dist.choices.index(v)) if categorical else (lambda v: v)  # noqa: E731
        for top in (False, True):
            points = [t for t in trials if (t.number in best) == top and key in t.params]
            ax.scatter(
                [place(t.params[key]) for t in points],
                [t.user_attrs["best_val_loss"] for t in points],
                s=22,
                c="tab:orange" if top else "tab:blue",
                alpha=0.9 if top else 0.5,
                label="best 25%" if top else "other trials",
            )
        spot = spots.get(key, ())
        if categorical:
            ax.set_xticks(range(len(dist.choices)), [str(c) for c in dist.choices])
            for value in spot:
                ax.axvspan(place(value) - 0.3, place(value) + 0.3, color="tab:orange", alpha=0.12)
        elif spot:
            ax.axvspan(spot[0], spot[1], color="tab:orange", alpha=0.15)
            if isinstance(dist, FloatDistribution) and dist.log:
                ax.set_xscale("log")
                ax.xaxis.set_minor_formatter(NullFormatter())  # minor labels overlap on a short decade
        if key in chosen and (not categorical or chosen[key] in dist.choices):
            ax.axvline(place(chosen[key]), color="black", ls="--", lw=1)
        ax.set_title(key, fontsize=9)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(dists) :]:
        ax.axis("off")
    axes.flat[0].set_ylabel("best val loss")
    axes.flat[0].legend(fontsize=7)
    fig.suptitle(
        f"{study.study_name}: validation loss against each knob (shaded: sweet spot; dashed: chosen)"
    )
    return _save(fig, path)


def curves(model: str, retrain: Retrain, path: Path) -> Path | None:
    seeds = [r for r in retrain.seeds if r.history]
    if not seeds:
        return None
    fig, ax = plt.subplots(figsize=(7, 4))
    for i, r in enumerate(seeds):
        epochs = [h.epoch for h in r.history]
        color = f"C{i}"
        ax.plot(epochs, [h.train_loss for h in r.history], color=color, ls=":", label=f"seed {r.seed} train")
        ax.plot(epochs, [h.val_loss for h in r.history], color=color, label=f"seed {r.seed} val")
        ax.axvline(r.best_epoch, color=color, lw=0.8, alpha=0.5)
    ax.set_xlabel("epoch")
    ax.set_ylabel("loss")
    ax.set_title(f"{model}: learning curves of the retrained best configuration (vertical: best epoch)")
    ax.legend(fontsize=7, ncol=2)
    return _save(fig, path)


def confusion(model: str, retrain: Retrain, label_names: list[str], path: Path) -> Path:
    seeds = retrain.seeds
    fig, axes = plt.subplots(1, len(seeds), figsize=(3.3 * len(seeds), 3.2), squeeze=False)
    for ax, r in zip(axes.flat, seeds):
        ConfusionMatrixDisplay(np.array(r.test["confusion"]), display_labels=label_names).plot(
            ax=ax, colorbar=False, values_format="d"
        )
        ax.set_title(f"seed {r.seed}: test acc {r.test['accuracy']:.3f}", fontsize=9)
        ax.tick_params(labelsize=7)
    fig.suptitle(f"{model}: test confusion matrices")
    return _save(fig, path)


def tradeoff(summaries: list, baseline, path: Path) -> Path | None:
    """Test accuracy against total parameters and against inference speed: one point per model."""
    if not summaries:
        return None
    points = [
        (s.model, s.retrain.mean["accuracy"], s.retrain.params, s.retrain.inference_per_s) for s in summaries
    ]
    if baseline:
        points.append(("tfidf+logreg", baseline.test["accuracy"], baseline.params, baseline.inference_per_s))
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for ax, column, label in ((axes[0], 2, "parameters"), (axes[1], 3, "inference (texts/s, from text)")):
        for point in points:
            name, acc, x = point[0], point[1], point[column]
            ax.scatter([x], [acc], s=40)
            ax.annotate(name, (x, acc), textcoords="offset points", xytext=(5, 4), fontsize=8)
        ax.set_xscale("log")
        ax.set_xlabel(label)
        ax.set_ylabel("test accuracy (mean over seeds)")
    fig.suptitle("accuracy against size and speed")
    return _save(fig, path)


def sweep_plots(run: RunDir, summaries: list, baseline, studies: dict, analyses: dict) -> list[Path]:
    """Every plot of the sweep; returns the files written. studies, analyses: {model: ...}."""
    out_dir = run.plots
    out_dir.mkdir(exist_ok=True)
    made = []
    for s in summaries:
        model, study = s.model, studies.get(s.model)
        if study is not None:
            # a sweet spot is shaded only for a knob with a detected effect
            spots = {
                r["knob"]: tuple(r["sweet_spot"])
                for r in analyses[model].get("knobs", [])
                if r.get("effect") == "detected"
            }
            made += [
                history(study, out_dir / f"{model}-history.png"),
                importance(
                    model,
                    analyses[model].get("knobs", []),
                    (analyses[model].get("importance") or {}).get("dummy"),
                    out_dir / f"{model}-importance.png",
                ),
                knobs(study, s.best_params, spots, out_dir / f"{model}-knobs.png"),
            ]
        made.append(curves(model, s.retrain, out_dir / f"{model}-curves.png"))
        made.append(
            confusion(model, s.retrain, s.data_report["label_names"], out_dir / f"{model}-confusion.png")
        )
    made.append(tradeoff(summaries, baseline, out_dir / "tradeoff.png"))
    return [p for p in made if p is not None]
