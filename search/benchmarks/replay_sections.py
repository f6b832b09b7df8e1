"""The benchmark sections that read the curve banks: the banks themselves, how far a replay can be trusted,
search efficiency on replay, and the choice of the search defaults (search/benchmarks/proof.py computes)."""

from pathlib import Path

import numpy as np

from search.benchmarks import proof
from search.benchmarks.bank import cpu_hours
from search.benchmarks.common import Context, table
from search.sweep.replay import load_bank, shipped_bank

FULL_BANKS = ("rt-lstm", "rt-rnn")
QUICK_BANKS = ("tiny-lstm",)
FULL_SEEDS, QUICK_SEEDS = 50, 2
DEFAULT_SEEDS, QUICK_DEFAULT_SEEDS = 10, 2


def banks(ctx: Context) -> list:
    return [load_bank(shipped_bank(name)) for name in (QUICK_BANKS if ctx.plan.quick else FULL_BANKS)]


def log_path(ctx: Context, name: str) -> Path:
    """Full runs log beside the banks (committed as they grow); quick ones in the work folder, afresh."""
    if ctx.plan.quick:
        ctx.work.mkdir(parents=True, exist_ok=True)
        path = ctx.work / f"{name}-quick.jsonl"
        path.unlink(missing_ok=True)
        return path
    return proof.LOGS / f"{name}.jsonl"


def _recorded(bank) -> str:
    sessions = bank.meta.get("sessions", [])
    commits = sorted({(s["commit"] or "?")[:7] for s in sessions})
    days = sorted({s["started"][:10] for s in sessions})
    return (
        f"{', '.join(days)}; commit {', '.join(commits)}; torch {sessions[0]['torch']}; {sessions[0]['cpu']}"
    )


def curve_bank(ctx: Context) -> str:
    rows = []
    for bank in banks(ctx):
        configs = bank.configs()
        rows.append(
            [
                bank.meta["title"],
                len(configs),
                sum(len(runs) > 1 for runs in configs.values()),
                len(bank.runs),
                f"{cpu_hours(bank):.2f}",
                _recorded(bank),
            ]
        )
    return table(
        "Curve bank",
        "Configurations drawn from each task's shipped space by a scrambled Sobol sequence (log scale "
        "where the space is log), trained to the task's maximum epochs without early stopping, one thread "
        "each; every fifth configuration on a second training seed. Recorded with `python -m search.bank "
        "record TASK --configs 300`; the banks are `search/benchmarks/banks/*.jsonl.gz`.",
        ["task", "configurations", "on two seeds", "runs", "CPU hours", "recorded"],
        rows,
    )


def replay_trust(ctx: Context) -> str:
    rows, rungs = [], []
    for bank in banks(ctx):
        t = proof.trust(bank)
        rows.append(
            [
                bank.meta["task"],
                t["held_out"],
                f"{t['spearman']:+.2f}",
                f"{t['ceiling']:+.2f} ({t['pairs']} pairs)" if t["ceiling"] is not None else "-",
                f"{100 * t['seed_sd']:.1f}" if t["seed_sd"] is not None else "-",
                f"{t['top_recall']:.0%} of {t['top']}",
            ]
        )
        rungs += [
            [bank.meta["task"], epoch, f"{acc:+.2f}", f"{loss:+.2f}"] for epoch, acc, loss in t["rungs"]
        ]
    part = table(
        "Replay: how far it can be trusted",
        "20% of the configurations held out: each replayed from its nearest recorded neighbour among the "
        "other 80% (1-NN on the knobs scaled to [0, 1]), against what was recorded for it. Quality: the "
        "best validation accuracy a trial reports (at its lowest validation loss, with the loop's early "
        "stopping). Noise ceiling: the same configuration on two training seeds; seed sd: one seed's "
        "standard deviation, in points. Top 10%: the share of the held-out top tenth that the replay also "
        "ranks there.",
        [
            "task",
            "held out",
            "Spearman replayed vs recorded",
            "noise ceiling (seed vs seed)",
            "seed sd",
            "top-10% recall",
        ],
        rows,
    )
    return (
        part
        + "\n"
        + table(
            "Replay: ASHA's premise",
            "Rank correlation, over the configurations (first seed, full curves), between an epoch's "
            "validation accuracy and the last epoch's, and between an epoch's validation loss (what ASHA "
            "compares at a rung) and the lowest of the whole curve (what the search minimises): stopping "
            "on early ranks helps only where they predict late ones.",
            ["task", "epoch", "val acc vs last", "val loss vs lowest"],
            rungs,
        )
    )


def replayed_efficiency(ctx: Context) -> str:
    seeds, trials = (QUICK_SEEDS, 10) if ctx.plan.quick else (FULL_SEEDS, 20)
    log = log_path(ctx, "replay-efficiency")
    parts = []
    headers = ["cell", "seeds", "ERT to target (sim s)", "reached", "ERT / random+FIFO", "ERT / TPE+ASHA"]
    headers += [f"IQM regret at {f:.0%} of T" for f in proof.FRACTIONS]
    headers += [f"P(beats random+FIFO) at {f:.0%} of T" for f in proof.FRACTIONS]
    headers += ["median sim s"]
    for bank in banks(ctx):
        rows = proof.run_jobs(bank, proof.efficiency_jobs(seeds, trials), log)
        quality = proof.config_quality(bank)
        best, median = max(quality.values()), float(np.median(list(quality.values())))
        cells, info = proof.efficiency_rows(rows, best, median)
        verdict = _efficiency_verdict(info)
        parts.append(
            table(
                f"Search efficiency (replayed): {bank.meta['title']}",
                f"{trials} trials a sweep, paired search seeds per cell, replayed on the "
                f"`{bank.meta['task']}` bank through Ray Tune, Optuna and ASHA on a simulated clock (the "
                "recorded CPU seconds). Target: random + FIFO's median final best val acc "
                f"({100 * info.get('target', 0):.1f}%); T: its median sweep time "
                f"({info.get('horizon', 0):.0f} simulated CPU s). ERT: expected running time to the target "
                "(all time spent over the runs that reached it), its ratio with a paired bootstrap 95% "
                "interval. Regret: (bank's best - best so far) / (bank's best - bank's median), IQM with "
                f"95% intervals. Ties count half. Sweeps: `{log.name}`. {verdict}",
                headers,
                cells,
            )
        )
    return "\n".join(parts)


def _efficiency_verdict(info: dict) -> str:
    ratio = info.get("ratios", {}).get("tpe+asha")
    if ratio is None:
        return ""
    value, low, high = ratio
    met = "met" if high <= 0.4 else "not met" if low > 0.4 else "not shown either way"
    return f"Goal (TPE + ASHA at most 0.4x random + FIFO's ERT): {met} ({value:.2f} [{low:.2f}, {high:.2f}])."


def search_defaults(ctx: Context) -> str:
    seeds = QUICK_DEFAULT_SEEDS if ctx.plan.quick else DEFAULT_SEEDS
    rows_asked = proof.DEFAULTS[::3] if ctx.plan.quick else proof.DEFAULTS
    log = log_path(ctx, "replay-defaults")
    parts = []
    for bank in banks(ctx):
        rows = proof.run_jobs(bank, proof.default_jobs(seeds, rows_asked), log)
        parts.append(
            table(
                f"Defaults: {bank.meta['title']}",
                "TPE + ASHA replayed on the bank, the shipped settings (20 trials, 10 start-up trials, "
                f"grace {'2' if bank.meta['model'] != 'rnn' else '4'}, reduction 3) and one change at a "
                "time; search seeds per row as given. A pick's quality is its configuration's recorded one "
                "(the mean over its recorded seeds). Near best: the pick within 1 point of the bank's best "
                "configuration; agree: two search seeds' picks within 1 point of each other (all pairs). "
                f"Sweeps: `{log.name}`.",
                ["setting", "seeds", "near best", "median gap (points)", "agree", "median sim s"],
                proof.default_rows(bank, rows),
            )
        )
    return "\n".join(parts)


def driver_memory(ctx: Context) -> str:
    """The driver's resident memory over a long replayed sweep (Ray Tune keeps every trial's object in the
    driver; ray-project/ray#64231 reports its driver growing per trial)."""
    import psutil

    from search.benchmarks.replayed import replay_sweep

    trials = 50 if ctx.plan.quick else 500
    bank = banks(ctx)[0]
    process = psutil.Process()
    marks = sorted({1, trials // 10, trials // 4, trials // 2, trials})
    seen: dict[int, float] = {}

    def note(record) -> None:
        done = len(seen_trials) + 1
        seen_trials.append(record)
        if done in marks:
            seen[done] = process.memory_info().rss / 2**20

    seen_trials: list = []
    out = replay_sweep(bank, {"search.trials": trials, "search.seed": 0}, on_trial=note)
    rows = [[n, f"{mb:.0f}", f"{mb - seen[marks[0]]:+.0f}"] for n, mb in sorted(seen.items())]
    growth = seen[max(seen)] - seen[min(seen)]
    per_trial = 1024 * growth / max(1, max(seen) - min(seen))
    return table(
        "Replay: driver memory over a long sweep",
        f"One replayed TPE + ASHA sweep of {trials} trials on the `{bank.meta['task']}` bank, with "
        "checkpoints as a real sweep keeps them; the driver's resident memory (psutil) as trials end. "
        f"Growth from the first trial to the last: {growth:.0f} MB ({per_trial:.0f} KB a trial; goal: at "
        f"most 100 MB over 500 trials); simulated time {out.clock.now:.0f} CPU s.",
        ["trials ended", "driver RSS MB", "since the first"],
        rows,
    )
