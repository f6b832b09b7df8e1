"""Sections 5, 5b and 6: Ray Tune's overhead against a plain Optuna loop, parallel trials on one machine, and
what ASHA saves."""

import tempfile
import time
from pathlib import Path

from models import build_model, entry
from search.benchmarks.common import Context, cores, table
from search.core.settings import apply_params, load_settings
from search.engine import fit, seed_everything, set_threads
from search.store.records import TrialState
from search.sweep.inputs import sweep_inputs


def sweep_settings(ctx: Context, trials: int, epochs: int, asha: bool):
    settings = load_settings(
        "lstm", {"search.trials": trials, "train.max_epochs": epochs, "data.train_size": ctx.plan.train_size}
    )
    if not asha:  # a grace period as long as the trial: ASHA never stops anything
        settings.search.grace_period = epochs
    # The benchmark's data is prepared at 64 tokens, as in the earlier runs: the length is not searched here.
    settings.space.pop("data.max_len", None)
    return settings


def plain_optuna(settings, data, n_jobs: int = 1) -> float:
    import optuna

    inputs, info = entry(settings.model_name).inputs(settings.model, data)
    batching = entry(settings.model_name).batching

    def objective(trial):
        cfg = apply_params(settings, {key: rule.suggest(trial, key) for key, rule in settings.space.items()})
        seed_everything(cfg.train.seed)
        model = build_model(cfg.model_name, cfg.model, data.num_classes, info)
        return fit(model, inputs["train"], inputs["val"], cfg.train, batching=batching).best_val_loss

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=settings.search.seed))
    start = time.perf_counter()
    study.optimize(objective, n_trials=settings.search.trials, n_jobs=n_jobs)
    return time.perf_counter() - start


def ray_sweep(settings, data, cpus: int):
    from search.sweep.tuner import run_search, trainable

    run = trainable(settings, sweep_inputs(settings, data), data.num_classes, cpus)
    with tempfile.TemporaryDirectory() as runs:
        start = time.perf_counter()
        outcome = run_search(settings, run, str(Path(runs) / "lstm"), "bench")
        return time.perf_counter() - start, outcome.records


def layouts() -> list[tuple[int, int]]:
    """(trials at once, CPUs each) that fill this machine: one trial on every core, or one per core."""
    return [(1, cores()), (cores(), 1)] if cores() > 1 else [(1, 1)]


def tune_overhead(ctx: Context) -> str:
    from search.sweep.cluster import connect

    start = time.perf_counter()
    connect(None, cores())
    ray_init = time.perf_counter() - start
    rows = []
    for concurrent, cpus in layouts():
        settings = sweep_settings(ctx, ctx.plan.sweep_trials, ctx.plan.sweep_epochs, asha=False)
        settings.search.concurrent, settings.train.threads = concurrent, cpus
        set_threads(cpus)  # plain Optuna runs its n_jobs trials as threads of this process
        optuna_wall = plain_optuna(settings, ctx.data, n_jobs=concurrent)
        ray_wall, _ = ray_sweep(settings, ctx.data, cpus)
        plan = ctx.plan
        sweep = f"{plan.sweep_trials} trials x {plan.sweep_epochs} epochs, LSTM, --concurrent {concurrent}"
        rows.append(
            [
                f"{sweep} --cpus {cpus}",
                f"{optuna_wall:.1f}",
                f"{ray_wall:.1f}",
                f"{ray_wall / optuna_wall:.2f}",
                f"{ray_init:.1f}",
            ]
        )
    set_threads(0)
    return table(
        "5. Ray Tune overhead vs a plain Optuna loop",
        "Same LSTM trainable, same space and TPE seed, no early stopping; trials one at a time on every "
        "core, or side by side on one core each (plain Optuna: `study.optimize(n_jobs=N)`, threads of one "
        "process). Wall seconds; Ray's start-up is shown apart (paid once per command).",
        ["sweep", "plain Optuna", "Ray Tune + Optuna", "ratio", "ray.init"],
        rows,
    )


def _best(records):
    return min((r for r in records if r.scored), key=lambda r: r.best_val_loss)


def parallel_trials(ctx: Context) -> str:
    """The same ASHA sweep with trials one at a time on every core, and side by side on one core each."""
    rows = []
    for concurrent, cpus in layouts():
        settings = sweep_settings(ctx, ctx.plan.sweep_trials, 2 if ctx.plan.quick else 10, asha=True)
        settings.search.concurrent = concurrent
        wall, records = ray_sweep(settings, ctx.data, cpus)
        best = _best(records)
        rows.append(
            [
                f"--concurrent {concurrent} --cpus {cpus}",
                len(records),
                sum(r.epochs for r in records),
                f"{60 * len(records) / wall:.1f}",
                f"{best.best_val_loss:.4f}",
                f"{best.best_val_acc:.4f}",
                f"{wall:.0f}",
            ]
        )
    return table(
        "5b. Parallel trials on one machine",
        "The same LSTM sweep with ASHA (grace 2, reduction 3, up to 10 epochs), TPE with constant liar when "
        "trials run side by side.",
        ["layout", "trials", "epochs run", "trials/min", "best val loss", "best val acc", "wall s"],
        rows,
    )


def asha_saving(ctx: Context) -> str:
    rows = []
    for asha in (False, True):
        settings = sweep_settings(ctx, ctx.plan.asha_trials, 2 if ctx.plan.quick else 10, asha)
        wall, records = ray_sweep(settings, ctx.data, cores())
        best = _best(records)
        rows.append(
            [
                "ASHA" if asha else "no early stopping",
                len(records),
                sum(r.epochs for r in records),
                sum(r.state == TrialState.STOPPED_EARLY for r in records),
                f"{best.best_val_acc:.4f}",
                f"{best.best_val_loss:.4f}",
                f"{wall:.0f}",
            ]
        )
    return table(
        "6. ASHA's saving",
        "Same LSTM trials and seed, with and without ASHA (grace 2 epochs, reduction factor 3).",
        ["scheduler", "trials", "epochs run", "stopped early", "best val acc", "best val loss", "wall s"],
        rows,
    )
