"""Search hyperparameters for one model or every registered one, retrain the best on several seeds, test.

    python -m search.tune --model lstm     # 20 trials on IMDB-2k, then 3 retrains and the leaderboard
    python -m search.tune --model all --trials 10 --dataset 20newsgroups --data-path 20news-bydate.tar.gz

Run the same command again to resume an interrupted sweep (or to show a finished one), with a larger --trials
to grow it; --fresh starts over.
"""

import argparse
import faulthandler
import json
import signal
import time
from pathlib import Path

import psutil

from configs.errors import cli_entry, require
from data_pipeline.config import BUILTIN_DATASETS, DataConfig
from models import MODELS
from search.core.options import add_data_args, add_model_args, settings_from_args
from search.core.settings import SearchConfig, parse_duration
from search.engine import TrainConfig
from search.store.layout import RunDir
from search.store.lock import SweepLock
from search.sweep.budget import TimeBudget
from search.sweep.inputs import check_one_dataset
from search.sweep.interrupt import Signals
from search.sweep.replay import bank_file, check_bank, load_bank

# Ray, SciPy and scikit-learn are imported after the lock is taken (in sweep() and finish_sweep()): a second
# driver on a running sweep is refused before it pays for them.


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m search.tune",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, choices=[*MODELS, "all"], help="architecture, or every one")
    add_data_args(parser)
    add_model_args(parser)
    g = parser.add_argument_group("search")
    g.add_argument("--trials", type=int, help=f"trials per model (default {SearchConfig.trials})")
    g.add_argument("--cpus", type=int, help="CPUs per trial; torch uses as many threads (default: all)")
    g.add_argument(
        "--memory-budget", help="enforced RSS limit per trial, e.g. 800MB or 3GB (default from config)"
    )
    g.add_argument(
        "--seeds",
        type=int,
        help=f"seeds for the retrain of the best configuration (default {SearchConfig.seeds})",
    )
    g.add_argument("--name", help="sweep name (default: derived from the dataset)")
    g.add_argument("--runs-dir", default="runs", help="where sweeps live (default ./runs)")
    g.add_argument("--fresh", action="store_true", help="discard this sweep's saved state and start over")
    g.add_argument(
        "--no-plots",
        action="store_true",
        help="skip the plots and the HTML report at the end (python -m search.report makes them later)",
    )
    g.add_argument(
        "--no-default",
        action="store_true",
        help="do not retrain the default configuration (it shows what the search bought over it)",
    )
    g.add_argument(
        "--time-budget",
        help="end the whole command within this time (90s, 15m, 1h): later trials start only while they and "
        "the retrain still fit; not part of the sweep (a rerun with another budget continues it)",
    )
    g.add_argument(
        "--warm-start",
        action="append",
        default=[],
        metavar="RUN_DIR",
        help="an earlier sweep (runs/<name>) whose trials of the same model inform the sampler first",
    )
    g.add_argument(
        "--extend-space",
        action="store_true",
        help="search a changed search space in a sweep that ran another; the earlier trials inside the new "
        "space inform the sampler",
    )
    g.add_argument("--address", help="join a running Ray cluster (HOST:PORT) instead of starting a local one")
    g.add_argument(
        "--concurrent",
        type=int,
        help=f"trials at once (default {SearchConfig.concurrent}); each has --cpus CPUs and its memory",
    )
    g.add_argument(
        "--storage",
        help="where trial results and checkpoints go: a directory every node mounts, or s3://, gs:// "
        "(default: the runs directory; required on a cluster of several nodes)",
    )
    add_replay_args(g)
    return parser.parse_args(argv)


def add_replay_args(group) -> None:
    group.add_argument(
        "--replay",
        metavar="BANK",
        help="a rehearsal: trials replay a curve bank's recorded curves (a shipped bank's name, e.g. "
        "tiny-lstm, or a file from python -m search.bank) instead of training; the retrains still train",
    )
    group.add_argument(
        "--replay-epoch-s",
        type=float,
        metavar="S",
        help="wall seconds each replayed epoch lasts (default 0)",
    )


def search_overrides(args) -> dict:
    out = {
        "search.trials": args.trials,
        "search.seeds": args.seeds,
        "search.memory_budget": args.memory_budget,
        "search.concurrent": args.concurrent,
        "search.storage": args.storage,
        "search.replay": args.replay,
        "search.replay_epoch_s": args.replay_epoch_s,
    }
    return {k: v for k, v in out.items() if v is not None}


def default_name(settings) -> str:
    """The dataset's name, whatever differs from the default split and seeds, and -rehearsal for a replay."""
    data, defaults = settings.data, DataConfig()
    name = Path(data.dataset).stem if data.dataset not in BUILTIN_DATASETS else data.dataset
    if data.dataset == "20newsgroups" and data.keep_headers:
        name += "-headers"
    sizes = (data.train_size, data.val_size, data.test_size)
    if data.full:
        name += "-full"
    elif sizes != (defaults.train_size, defaults.val_size, defaults.test_size):
        name += "-" + "-".join(map(str, sizes))
    if data.seed != defaults.seed:
        name += f"-split{data.seed}"
    if settings.train.seed != TrainConfig().seed:
        name += f"-seed{settings.train.seed}"
    if settings.search.replay:  # a rehearsal never writes into the real sweep's folder by default
        name += "-rehearsal"
    return name


def check_args(args) -> None:
    for flag in ("trials", "cpus", "seeds", "concurrent"):
        value = getattr(args, flag)
        require(value is None or value >= 1, f"--{flag} must be at least 1, got {value}")
    require(
        not (args.config and args.model == "all"),
        "--config replaces one model's YAML; use it with a single --model, or edit configs/<model>.yaml for "
        "--model all",
    )
    if args.time_budget:
        parse_duration(args.time_budget)
    for path in args.warm_start:
        require(Path(path).is_dir(), f"--warm-start {path}: no such sweep folder; give a runs/<name> folder")
    require(
        not (args.replay and args.model == "all"),
        "--replay: a curve bank holds one model's curves; use it with a single --model",
    )


def ensure_baseline(run: RunDir, data, identity: str, min_token_len: int) -> None:
    """The TF-IDF row and the model search.predict serves for it, computed again whenever the data it was
    computed on is not this data (or either is missing)."""
    from search.sweep.baseline import save_baseline_model, tfidf_baseline

    saved = run.read_baseline()
    bundle = run.baseline_model.bundle
    current = saved is not None and saved.dataset == identity and bundle.read_meta() is not None
    if not current or run.read_baseline_predictions("test") is None:
        row, kept, fitted = tfidf_baseline(data, identity)
        save_baseline_model(bundle, fitted, data, min_token_len, row.C)
        for split, predictions in kept.items():
            run.write_baseline_predictions(split, predictions)
        run.write_baseline(row)


def sweep(args, settings: list, run: RunDir, budget: TimeBudget | None, signals: Signals) -> None:
    """Each model's sweep, in order, with the settings main built for it."""
    from search.sweep.identity import check_dataset
    from search.sweep.inputs import command_data, data_for
    from search.sweep.pipeline import SweepOptions, print_data_report, sweep_model

    first = settings[0]
    identity = check_dataset(run, first, args.fresh)
    data = command_data(settings, args.cache_dir)  # once: each model cuts its own
    print_data_report(data_for(first, data))
    options = SweepOptions(
        cache_dir=args.cache_dir,
        address=args.address,
        cpus=args.cpus,
        fresh=args.fresh,
        default=not args.no_default,
        budget=budget,
        warm_start=[RunDir(Path(p)) for p in args.warm_start],
        extend_space=args.extend_space,
        signals=signals,
    )
    for model in settings:
        if budget:
            budget.begin(model.model_name)
        sweep_model(model, run, options, data)
        if budget:
            budget.end(model.model_name)
    ensure_baseline(run, data_for(first, data), identity, first.data.min_token_len)


def save_ensemble_bundle(board) -> None:
    """The kept ensemble as a bundle search.predict can serve; a stale one goes. A step of the sweep: the
    report only describes the ensemble, so that python -m search.report never writes a model."""
    from search.sweep.bundle import save_ensemble

    if board.ensemble is not None and board.ensemble.kept:
        labels = board.summaries[0].data_report["label_names"]
        describe = board.ensemble.describe()
        save_ensemble(board.run.ensemble.bundle, board.ensemble.weights, labels, board.dataset, describe)
    else:
        board.run.ensemble.remove()


def finish_sweep(run: RunDir, plots: bool) -> str:
    """The sweep's last steps: the leaderboard is built, the ensemble it chose is saved, then the
    leaderboard's files are written, so that the default they record can be served once they exist."""
    from search.analysis.leaderboard import build, write_report

    board = build(run)
    save_ensemble_bundle(board)
    return write_report(board, plots)


@cli_entry
def main(argv=None):
    args = parse_args(argv)
    check_args(args)
    start = psutil.Process().create_time()  # the command's start: a time budget counts its imports too
    models = list(MODELS) if args.model == "all" else [args.model]
    settings = [settings_from_args(model, args, search_overrides(args)) for model in models]  # once each
    first = settings[0]
    check_one_dataset(settings)
    for model in settings:  # a model's YAML may name its own bank: every one is checked before any work
        if model.search.replay:
            check_bank(load_bank(bank_file(model.search.replay)), model)
    run = RunDir(Path(args.runs_dir) / (args.name or default_name(first)))
    budget = TimeBudget(parse_duration(args.time_budget), models, start) if args.time_budget else None
    signals = Signals()
    signals.install()
    faulthandler.register(signal.SIGUSR2, all_threads=True)  # `kill -USR2 PID`: where a stuck sweep waits
    try:
        with SweepLock(run.lock_path) as lock:
            if lock.took_over:
                holder = lock.took_over
                print(
                    f"took over the lock of {run.root} from PID {holder.get('pid')}, no longer running",
                    flush=True,
                )
            run.remove_temporaries()  # what a writer killed halfway left (the lock is ours now)
            sweep(args, settings, run, budget, signals)
            print("\n" + finish_sweep(run, plots=not args.no_plots))
    finally:
        faulthandler.unregister(signal.SIGUSR2)
        signals.restore()
    print(f"\nwall time {time.time() - start:.0f}s; results in {run.root}")
    if args.json:
        from search.analysis.leaderboard import json_summary, load_sweep

        summaries, baseline = load_sweep(run)
        print(json.dumps(json_summary([s for s in summaries if s.model in models], baseline)))


if __name__ == "__main__":
    main()
