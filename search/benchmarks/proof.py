"""What the curve banks say: how far a replay can be trusted, what TPE + ASHA buys over simpler search, and
which search defaults reproduce their answer. Every replayed sweep goes through the product's own search
(search/benchmarks/replayed.py); each is appended to a JSON-lines log as it ends, so a stopped benchmark
continues where it stopped and the log can be committed as it grows.

A configuration's quality is what a trial of it reports: its best validation accuracy (at its lowest
validation loss, with the training loop's early stopping), replayed from the bank.
"""

import json
from itertools import combinations
from pathlib import Path

import numpy as np
from scipy.stats import spearmanr

from search.analysis.stats import bootstrap, iqm, resample_indices
from search.benchmarks.replayed import replay_sweep
from search.sweep.replay import Bank, replay_curve

LOGS = Path(__file__).resolve().parent / "logs"
CELLS = (("tpe", "asha"), ("tpe", "fifo"), ("random", "asha"), ("random", "fifo"), ("qmc", "asha"))
REFERENCE = ("random", "fifo")
SHIPPED = ("tpe", "asha")
FRACTIONS = (0.25, 0.5, 1.0)
HELD_OUT = 0.2


def quality(bank: Bank, run) -> float:
    """The best validation accuracy a real trial of this run would report."""
    curve = replay_curve(run, int(bank.meta["patience"]), bank.max_epochs)
    return float(curve[-1].best_val_acc) if curve else 0.0


def config_quality(bank: Bank) -> dict[int, float]:
    """{configuration: its quality, the mean over its recorded seeds}."""
    return {k: float(np.mean([quality(bank, r) for r in runs])) for k, runs in bank.configs().items()}


# ---- how far the replay can be trusted ---------------------------------------------------------------------


def trust(bank: Bank, seed: int = 0) -> dict:
    """Replay each held-out configuration (20%, drawn with `seed`) from its nearest neighbour among the rest,
    against what was recorded for it; the noise ceiling (seed against seed); ASHA's premise per rung."""
    configs = bank.configs()
    keys = sorted(configs)
    rng = np.random.default_rng(seed)
    held = set(rng.choice(keys, size=max(2, int(HELD_OUT * len(keys))), replace=False).tolist())
    rest = [k for k in keys if k not in held]
    first = {k: min(configs[k], key=lambda r: r.seed) for k in keys}
    recorded = np.array([quality(bank, first[k]) for k in sorted(held)])
    replayed = np.array([quality(bank, first[bank.nearest(first[k].params, rest)]) for k in sorted(held)])
    top = max(1, round(0.1 * len(held)))
    top_recorded = set(np.argsort(-recorded)[:top])
    top_replayed = set(np.argsort(-replayed)[:top])
    twice = [sorted(runs, key=lambda r: r.seed)[:2] for runs in configs.values() if len(runs) > 1]
    seeds = np.array([[quality(bank, a), quality(bank, b)] for a, b in twice])
    return {
        "held_out": len(held),
        "spearman": float(spearmanr(recorded, replayed)[0]),
        "ceiling": float(spearmanr(seeds[:, 0], seeds[:, 1])[0]) if len(seeds) > 2 else None,
        "pairs": len(seeds),
        "seed_sd": float(np.std(seeds[:, 0] - seeds[:, 1], ddof=1) / np.sqrt(2)) if len(seeds) > 2 else None,
        "top_recall": len(top_recorded & top_replayed) / top,
        "top": top,
        "rungs": rung_correlations(bank),
    }


def rung_correlations(bank: Bank) -> list[tuple[int, float, float]]:
    """(epoch, rank correlation of val acc there with val acc at the last epoch, rank correlation of val loss
    there, what ASHA compares, with the lowest val loss of the whole curve, what the search minimises) for
    each epoch a trial can be stopped at, over the first seed's full curves."""
    runs = [r for r in bank.runs if len(r.epochs) == bank.max_epochs and r.seed == min(bank.meta["seeds"])]
    last_acc = [r.epochs[-1][1] for r in runs]
    best_loss = [min(e[0] for e in r.epochs) for r in runs]
    out = []
    for epoch in range(1, bank.max_epochs):
        acc = spearmanr([r.epochs[epoch - 1][1] for r in runs], last_acc)[0]
        loss = spearmanr([r.epochs[epoch - 1][0] for r in runs], best_loss)[0]
        out.append((epoch, float(acc), float(loss)))
    return out


# ---- replayed sweeps, logged -------------------------------------------------------------------------------


def logged(log: Path) -> list[dict]:
    return (
        [json.loads(line) for line in log.read_text().splitlines() if line.strip()] if log.is_file() else []
    )


def run_jobs(bank: Bank, jobs: list[tuple[str, dict]], log: Path, say=print) -> list[dict]:
    """Replay every (label, search settings) not yet in the log; append each as it ends."""
    runs = len(bank.runs)  # a sweep replayed on a smaller bank (recorded since) is replayed again
    done = [r for r in logged(log) if r["task"] != bank.meta["task"] or r.get("bank_runs") == runs]
    have = {(r["task"], r["label"], r["search"]["search.seed"]) for r in done}
    log.parent.mkdir(parents=True, exist_ok=True)
    todo = [(label, s) for label, s in jobs if (bank.meta["task"], label, s["search.seed"]) not in have]
    for number, (label, search) in enumerate(todo, 1):
        out = replay_sweep(bank, search, checkpoints=False).to_dict()
        row = {"task": bank.meta["task"], "bank_runs": runs, "label": label, "search": search} | out
        with open(log, "a") as file:
            file.write(json.dumps(row) + "\n")
        done.append(row)
        if number % 10 == 0 or number == len(todo):
            say(f"[{bank.meta['task']}] replayed {number}/{len(todo)} sweeps")
    return [r for r in done if r["task"] == bank.meta["task"]]


def efficiency_jobs(seeds: int, trials: int = 20) -> list[tuple[str, dict]]:
    """Seeds outermost, so that a stopped run is balanced across cells."""
    return [
        (
            f"{sampler}+{scheduler}",
            {
                "search.sampler": sampler,
                "search.scheduler": scheduler,
                "search.seed": seed,
                "search.trials": trials,
            },
        )
        for seed in range(seeds)
        for sampler, scheduler in CELLS
    ]


# ---- search efficiency -------------------------------------------------------------------------------------


def best_at(curve: list, t: float) -> float:
    reached = [acc for when, acc in curve if when <= t]
    return reached[-1] if reached else 0.0


def time_to(curve: list, target: float, total: float) -> tuple[float, bool]:
    return next(((when, True) for when, acc in curve if acc >= target - 1e-12), (total, False))


def ert(times: np.ndarray, reached: np.ndarray) -> float:
    """Expected running time to the target: all the time spent, over the runs that reached it."""
    return float(times.sum() / reached.sum()) if reached.sum() else float("inf")


def efficiency_rows(rows: list[dict], best: float, median: float) -> tuple[list[list], dict]:
    """A row per cell against random + FIFO, paired by search seed; best, median: the bank's best and median
    configuration quality (regret is normalised between them)."""
    runs = {
        cell: {r["search"]["search.seed"]: r for r in rows if r["label"] == "+".join(cell)} for cell in CELLS
    }
    reference = runs[REFERENCE]
    if not reference:
        return [], {}
    target = float(np.median([r["curve"][-1][1] for r in reference.values()]))
    horizon = float(np.median([r["sim_s"] for r in reference.values()]))
    out, ratios = [], {}
    for cell in CELLS:
        seeds = sorted(set(runs[cell]) & set(reference))
        if not seeds:
            continue
        mine = [runs[cell][s] for s in seeds]
        ref = [reference[s] for s in seeds]
        ttt = np.array([time_to(r["curve"], target, r["sim_s"]) for r in mine], dtype=float)
        ref_ttt = np.array([time_to(r["curve"], target, r["sim_s"]) for r in ref], dtype=float)
        pairs = np.column_stack([ttt, ref_ttt])
        ratio, (low, high) = ert_ratio(pairs)
        ratios["+".join(cell)] = (ratio, low, high)
        shipped = [runs[SHIPPED].get(s) for s in seeds]
        versus = "-"
        if all(shipped):  # the same seeds' ERT against the shipped TPE + ASHA's, paired
            own = np.array([time_to(r["curve"], target, r["sim_s"]) for r in shipped], dtype=float)
            versus = _interval(*ert_ratio(np.column_stack([ttt, own])), "{:.2f}")
        regret = {
            f: np.array([(best - best_at(r["curve"], f * horizon)) / (best - median) for r in mine])
            for f in FRACTIONS
        }
        wins = {
            f: np.array([_beats(a["curve"], b["curve"], f * horizon) for a, b in zip(mine, ref)])
            for f in FRACTIONS
        }
        out.append(
            [
                f"{cell[0]} + {cell[1]}",
                len(seeds),
                _interval(ert(ttt[:, 0], ttt[:, 1]), None, "{:.0f}"),
                f"{ttt[:, 1].mean():.0%}",
                _interval(ratio, (low, high), "{:.2f}"),
                versus,
                *(_interval(*bootstrap(lambda x: float(iqm(x)), regret[f]), "{:.2f}") for f in FRACTIONS),
                *(_interval(*bootstrap(lambda x: float(np.mean(x)), wins[f]), "{:.2f}") for f in FRACTIONS),
                f"{np.median([r['sim_s'] for r in mine]):.0f}",
            ]
        )
    return out, {"target": target, "horizon": horizon, "ratios": ratios}


def ert_ratio(pairs: np.ndarray) -> tuple[float, tuple[float, float]]:
    """ERT of a cell over random + FIFO's, and its paired bootstrap 95% interval; pairs: rows of (time,
    reached, reference time, reference reached) per search seed. Resamples where one side never reached the
    target give an infinite or undefined ratio, so the interval takes the nearest resample, not a blend."""

    def ratio(x):
        mine, ref = ert(x[:, 0], x[:, 1]), ert(x[:, 2], x[:, 3])
        return mine / ref if np.isfinite(ref) else float("nan")

    values = np.array([ratio(pairs[i]) for i in resample_indices(len(pairs))])
    values = values[~np.isnan(values)]
    if not len(values):
        return ratio(pairs), (float("nan"), float("nan"))
    low, high = np.percentile(values, [2.5, 97.5], method="nearest")
    return ratio(pairs), (float(low), float(high))


def _beats(curve: list, reference: list, t: float) -> float:
    a, b = best_at(curve, t), best_at(reference, t)
    return 1.0 if a > b else 0.5 if a == b else 0.0


def _interval(value, bounds, fmt: str) -> str:
    if bounds is None:
        return fmt.format(value)
    return f"{fmt.format(value)} [{fmt.format(bounds[0])}, {fmt.format(bounds[1])}]"


# ---- defaults ----------------------------------------------------------------------------------------------

DEFAULTS = (  # (label, search settings): the shipped TPE + ASHA, then one change at a time
    ("20 trials", {}),
    ("40 trials", {"search.trials": 40}),
    ("60 trials", {"search.trials": 60}),
    ("20 trials, 5 start-up", {"search.startup_trials": 5}),
    ("20 trials, grace 1", {"search.grace_period": 1}),
    ("20 trials, reduction 2", {"search.reduction_factor": 2}),
    ("20 trials, reduction 4", {"search.reduction_factor": 4}),
)


def default_jobs(seeds: int, settings=DEFAULTS) -> list[tuple[str, dict]]:
    base = {"search.sampler": "tpe", "search.scheduler": "asha", "search.trials": 20}
    return [
        (label, base | change | {"search.seed": seed}) for seed in range(seeds) for label, change in settings
    ]


def pick_quality(bank: Bank, row: dict, by_config: dict[int, float]) -> float:
    """The recorded quality of a sweep's pick: its nearest configuration's, the mean over recorded seeds."""
    return by_config[bank.nearest(row["pick_params"])]


def default_rows(bank: Bank, rows: list[dict]) -> list[list]:
    by_config = config_quality(bank)
    best = max(by_config.values())
    out = []
    for label, _ in DEFAULTS:
        mine = [r for r in rows if r["label"] == label and r["pick_params"]]
        if not mine:
            continue
        picks = np.array([pick_quality(bank, r, by_config) for r in mine])
        near = (best - picks <= 0.01).astype(float)
        agree = np.array([abs(a - b) <= 0.01 for a, b in combinations(picks, 2)], dtype=float)
        out.append(
            [
                label,
                len(mine),
                f"{near.mean():.0%}",
                f"{100 * np.median(best - picks):.1f}",
                f"{agree.mean():.0%}" if len(agree) else "-",
                f"{np.median([r['sim_s'] for r in mine]):.0f}",
            ]
        )
    return out
