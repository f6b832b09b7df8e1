"""The leaderboard of a sweep: one row per model, an ensemble row when it won on validation, and the TF-IDF +
logistic regression row, with intervals and paired verdicts (search/analysis/rows.py); the analysis of each
model's knobs; the plots and report.html. All from what the run directory holds."""

import dataclasses
import textwrap
from dataclasses import dataclass, field

from tabulate import tabulate

from models import MODELS
from search.analysis import rows as boards
from search.analysis.ensemble import FOLDS, REPEATS
from search.analysis.knobs import analyse
from search.analysis.tables import (
    DETAIL_HEADERS,
    DETAIL_NOTE,
    KNOB_HEADERS,
    _points,
    analysis_lines,
    detail_rows,
    knob_table,
    main_headers,
    main_rows,
    seeds_text,
    served_line,
)
from search.engine import metrics
from search.store import study
from search.store.layout import RunDir


@dataclass
class Board:
    run: RunDir
    summaries: list
    baseline: object
    rows: list = field(default_factory=list)
    best: object = None  # the validation-best row
    ensemble: object = None  # analysis.ensemble.Ensemble, kept or not
    served: str | None = None  # what search.predict serves by default
    studies: dict = field(default_factory=dict)
    analyses: dict = field(default_factory=dict)
    notes: list = field(default_factory=list)

    @property
    def dataset(self) -> str:
        return self.summaries[0].dataset if self.summaries else "?"


def load_sweep(run: RunDir) -> tuple[list, object]:
    """(the finished models' summaries in the registry's order, the baseline or None)."""
    return run.summaries(list(MODELS)), run.read_baseline()


def build(run: RunDir) -> Board:
    summaries, baseline = load_sweep(run)
    board = Board(run, summaries, baseline)
    board.rows, labels = boards.gather(run, summaries, baseline)
    if labels:
        board.ensemble = boards.add_ensemble(board.rows, labels)
        num_classes = len(summaries[0].data_report["label_names"]) if summaries else 2
        for row in board.rows:
            if row.kind == "ensemble":
                row.stats["test"] = metrics(labels["test"], row.served.argmax(1), num_classes)
        board.best = boards.compare(run, board.rows, labels, num_classes)
    board.studies = {s.model: study.load_study(run, s.model) for s in summaries}
    board.analyses = {s.model: analyse(board.studies[s.model], s) for s in summaries}
    baseline_served = run.baseline_model.bundle.read_meta() is not None
    board.served = (
        boards.validation_winner(board.rows, board.ensemble, summaries, baseline_served)
        if summaries
        else None
    )
    board.notes = notes(board, labels)
    return board


def notes(board: Board, labels: dict) -> list[str]:
    out = []
    if board.best is not None:
        out.append(
            f"each row is one predictor, its seed-averaged predictions (what search.predict serves), on the "
            f"same {len(labels['test'])} test texts. Verdicts "
            f"against the validation-best row ({board.best.name}) and the TF-IDF row: McNemar's exact test, "
            "Holm-corrected across the rows at 0.05 (tied unless the difference is real); tuned - default: "
            "the paired difference, its p-value Holm-corrected across the models. The paired bootstrap 95% "
            "intervals of the differences are unadjusted: a verdict follows the corrected test, not the "
            "interval"
        )
        seeds = ", ".join(f"{s.model} {seeds_text(s.retrain)}" for s in board.summaries)
        out.append(f"seeds: each retrain seed's own test accuracy, mean ± sd: {seeds}")
        names = board.summaries[0].data_report.get("label_names", []) if board.summaries else []
        out.append(
            f"F1: of the positive class ({names[1]!r}, the second label)"
            if len(names) == 2
            else "F1: the macro mean over the classes present in the labels or the predictions"
        )
    missing = [r.name for r in board.rows if not r.comparable]
    if missing:
        out.append(
            f"no intervals or verdicts for {', '.join(missing)}: finished before predictions were kept; "
            "run the sweep again with --fresh to get them"
        )
    chosen = board.ensemble
    if chosen is not None:
        members = ", ".join(f"{m} {w:.2f}" for m, w in chosen.weights.items())
        verdict = "kept" if chosen.kept else "not kept"
        diff, low, high = chosen.gain
        out.append(
            f"ensemble ({members}): out-of-fold val acc {100 * chosen.crossfit_val_accuracy:.1f}% against "
            f"{chosen.best_single}'s {100 * chosen.best_single_val_accuracy:.1f}%, a paired gain of "
            f"{_points(diff)} [{_points(low)}, {_points(high)}] points over {REPEATS} shuffled "
            f"{FOLDS}-fold splits: {verdict} (kept only where the interval is above 0)"
            + (" (*: its val acc and loss are out of fold)" if chosen.kept else "")
        )
    for s in board.summaries:
        if s.search and s.search.stopped_by == "time budget":
            out.append(
                f"{s.model}: the time budget ended its search after {s.search.ran} of {s.search.asked} trials"
            )
        if s.search and s.search.told:
            out.append(
                f"{s.model}: {s.search.told} earlier trials (--warm-start, --extend-space) informed the "
                "sampler; they are not counted, chosen or in importance"
            )
    return out


def render(board: Board, fmt: str, detailed: bool, note: str = "") -> str:
    parts = [
        f"leaderboard: {board.run.name} ({board.dataset}{note})",
        tabulate(
            main_rows(board.rows, detailed),
            headers=main_headers(detailed),
            tablefmt=fmt,
            disable_numparse=True,
        ),
        "\n".join(
            _wrap(line)
            for line in [
                *board.notes,
                served_line(boards.served_name(board.best), board.served),
            ]
        ),
        tabulate(
            detail_rows(board.summaries, board.analyses, board.baseline), headers=DETAIL_HEADERS, tablefmt=fmt
        )
        + "\n"
        + _wrap(DETAIL_NOTE),
        *(analysis_text(s.model, board.analyses[s.model], fmt) for s in board.summaries),
    ]
    return "\n\n".join(parts)


def analysis_text(model: str, analysis: dict, fmt: str) -> str:
    title, lines = analysis_lines(model, analysis)
    table = (
        [tabulate(knob_table(analysis), headers=KNOB_HEADERS, tablefmt=fmt)] if "knobs" in analysis else []
    )
    return "\n".join([_wrap(title), *table, *map(_wrap, lines)])


def _wrap(line: str) -> str:
    """At most 120 columns, as a terminal shows them."""
    return textwrap.fill(line, 120, subsequent_indent="  ") if len(line) > 120 else line


def payload(board: Board) -> dict:
    """leaderboard.json: each model's summary with its row's statistics (test_ci, vs_best, vs_baseline,
    vs_default), the ensemble's entry, the baseline with its own, the analysis of every model."""
    models, baseline = [], None
    for row in board.rows:
        stats = {k: row.stats.get(k) for k in ("test_ci", "vs_best", "vs_baseline", "vs_default")}
        stats |= {"val_accuracy": row.val_accuracy, "val_loss": row.val_loss}
        if row.kind == "model":
            seeds = row.summary.retrain
            models.append(
                row.summary.to_dict()
                | stats
                | {
                    "test": row.stats.get("test"),  # the row's headline: the seed-averaged predictor
                    "test_per_seed": [{"seed": r.seed, **r.test} for r in seeds.seeds],
                    "test_mean": seeds.mean,
                    "test_std": seeds.std,
                }
            )
        elif row.kind == "ensemble":
            models.append(
                {"model": "ensemble", "test": row.stats["test"], **stats, **board.ensemble.describe()}
            )
        else:
            baseline = board.baseline.to_dict() | {k: v for k, v in stats.items() if k != "vs_baseline"}
    return {
        "models": models,
        "baseline": baseline,
        "analysis": board.analyses,
        "best": board.best.name if board.best else None,
        "predict_default": board.served,
        "ensemble": board.ensemble.describe() if board.ensemble else None,
        "notes": board.notes,
    }


def write_report(board: Board, plots: bool = True) -> str:
    """Print-ready text; also writes leaderboard.md, leaderboard.json, the plots and report.html. It writes no
    model: the sweep saves the ensemble's bundle (search.tune), the report only describes it."""
    from search.analysis.html import write_html
    from search.analysis.plots import sweep_plots

    run = board.run
    run.write_leaderboard(render(board, "github", detailed=True) + "\n", payload(board))
    if plots:
        images = sweep_plots(run, board.summaries, board.baseline, board.studies, board.analyses)
        write_html(board, images)
    return render(board, "simple", detailed=False, note=f"; {run.size_mb():.1f} MB on disk")


def write_leaderboard(run: RunDir, plots: bool = True) -> str:
    """write_report of the board built from what the run directory holds now."""
    return write_report(build(run), plots)


def json_summary(summaries: list, baseline) -> dict:
    """The --json line: per model, test metrics per seed and their mean, trials, best config, wall time."""
    models = {
        s.model: {
            "test_per_seed": [{"seed": r.seed, **r.test} for r in s.retrain.seeds],
            "test_mean": s.retrain.mean,
            "test_std": s.retrain.std,
            "trials": dataclasses.asdict(s.trials),
            "best_config": s.best_params,
            "search_wall_s": s.search_wall_s,
            "wall_s": s.wall_s,
        }
        for s in summaries
    }
    return {"models": models, "baseline": baseline and {"test": baseline.test, "C": baseline.C}}
