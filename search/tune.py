"""Search hyperparameters for one model or every registered one, retrain the best on several seeds, test.

    python -m search.tune --model lstm     # 20 trials on IMDB-2k, then 3 retrains and the leaderboard
    python -m search.tune --model all --trials 10 --dataset 20newsgroups --data-path 20news-bydate.tar.gz

Run the same command again to resume an interrupted sweep (or to show a finished one); --fresh starts over.
"""

import argparse
import csv
import dataclasses
import hashlib
import json
import resource
import shutil
import time
from pathlib import Path

import yaml

from configs.errors import UserError, cli_entry, require
from data_pipeline.config import BUILTIN_DATASETS, DataConfig
from data_pipeline.prepare import format_report
from data_pipeline.sources import fingerprint
from models import MODELS
from search.baseline import tfidf_baseline
from search.bundle import save_bundle
from search.cli import add_data_args, add_model_args, settings_from_args
from search.engine import TrainConfig
from search.inputs import model_inputs, prepare_for_sweep, sweep_inputs
from search.provenance import provenance
from search.report import json_summary, load_sweep, write_leaderboard
from search.retrain import retrain
from search.settings import SearchConfig, apply_params, parse_bytes
from search.study import add_trial, delete_study, write_study

STATES = ("completed", "stopped_early", "failed")


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m search.tune",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--model",
        required=True,
        choices=[*MODELS, "all"],
        help="architecture, or every registered one in turn",
    )
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
        help=f"seeds for the final retrain of the best configuration (default {SearchConfig.seeds})",
    )
    g.add_argument("--name", help="sweep name (default: derived from the dataset)")
    g.add_argument("--runs-dir", default="runs", help="where sweeps live (default ./runs)")
    g.add_argument("--fresh", action="store_true", help="discard this sweep's saved state and start over")
    g.add_argument(
        "--no-plots",
        action="store_true",
        help="skip the PNGs and report.html at the end (python -m search.report makes them later)",
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
    return parser.parse_args(argv)


def search_overrides(args) -> dict:
    out = {
        "search.trials": args.trials,
        "search.seeds": args.seeds,
        "search.memory_budget": args.memory_budget,
        "search.concurrent": args.concurrent,
        "search.storage": args.storage,
    }
    return {k: v for k, v in out.items() if v is not None}


def default_name(settings) -> str:
    """The dataset's name, and whatever differs from the default split and seeds."""
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
    return name


def check_dataset(sweep_root: Path, settings, fresh: bool) -> str:
    """A sweep name holds one dataset, so that its leaderboard compares like with like: the data settings
    (max_len aside: each model searches its own) and the source's content."""
    data = {k: v for k, v in dataclasses.asdict(settings.data).items() if k != "max_len"}
    wanted = json.loads(json.dumps({"data": data, "source": fingerprint(settings.data)}))
    path = sweep_root / "dataset.json"
    if path.is_file():
        saved = json.loads(path.read_text())
        changed = [
            f"data.{k} was {saved['data'].get(k)!r}, now {v!r}"
            for k, v in wanted["data"].items()
            if saved["data"].get(k) != v
        ]
        if saved["source"] != wanted["source"]:
            changed.append(f"the source's content changed ({saved['source']} -> {wanted['source']})")
        if changed and not fresh:
            raise UserError(
                f"{sweep_root} holds sweeps of other data: {'; '.join(changed)}; pass --fresh to "
                "discard them, or --name to start another sweep"
            )
        if changed:
            print(f"--fresh: the data changed ({'; '.join(changed)}); discarding all of {sweep_root}")
            shutil.rmtree(sweep_root)
    sweep_root.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(wanted, indent=2))
    return hashlib.sha256(path.read_bytes()).hexdigest()[:16]


def check_sweep_state(sweep_dir: Path, settings) -> None:
    """One sweep directory holds one set of settings: a resume with other settings would mix two searches."""
    state_file = sweep_dir / "sweep.json"
    wanted = json.loads(json.dumps(settings.as_dict()))
    if state_file.is_file():
        saved = json.loads(state_file.read_text())
        for section in ("data", "model", "train", "search"):
            # a key the saved settings lack is newer than the sweep, which ran with its default
            default = json.loads(json.dumps(dataclasses.asdict(type(settings.section(section))())))
            for key in sorted(set(wanted[section]) | set(saved[section])):
                if wanted[section].get(key) != saved[section].get(key, default.get(key)):
                    raise UserError(
                        f"{sweep_dir} was started with {section}.{key}={saved[section].get(key)!r}, "
                        f"not {wanted[section].get(key)!r}; rerun with the same settings to resume, "
                        "or pass --fresh to discard it, or --name to start another sweep"
                    )


def begin_sweep(sweep_dir: Path, settings, fresh: bool, experiment: str) -> None:
    """After every check has passed (a refused command changes nothing): discard the old sweep on --fresh,
    then record the settings that a resume must repeat."""
    from search.storage import remove

    if fresh and sweep_dir.exists():
        finished = len(list(sweep_dir.glob("*/result.json")))
        print(f"--fresh: discarding {sweep_dir} ({finished} trial folders, checkpoints, results)")
        shutil.rmtree(sweep_dir)
    if fresh:
        remove(experiment)  # where --storage put the trials (gone already when that is sweep_dir)
        delete_study(sweep_dir.parent, sweep_dir.name)
    state_file = sweep_dir / "sweep.json"
    if not state_file.is_file():
        sweep_dir.mkdir(parents=True, exist_ok=True)
        wanted = json.loads(json.dumps(settings.as_dict()))
        state_file.write_text(json.dumps(wanted | {"provenance": provenance()}, indent=2))


def write_trials(sweep_dir: Path, records) -> None:
    from search.sweep import record_dict

    rows = [record_dict(r) for r in records]
    with open(sweep_dir / "trials.csv", "w", newline="") as fh:
        writer = csv.DictWriter(
            fh, fieldnames=[k for k in rows[0] if k != "params"] + sorted(rows[0]["params"])
        )
        writer.writeheader()
        for row in rows:
            params = row.pop("params")
            writer.writerow(row | params)
    keys = [
        "epoch",
        "train_loss",
        "train_acc",
        "val_loss",
        "val_acc",
        "lr",
        "grad_norm",
        "seconds",
        "overfitting",
        "collapse",
        "peak_rss_mb",
    ]
    with open(sweep_dir / "history.csv", "w", newline="") as fh:
        writer = csv.writer(fh)
        writer.writerow(["trial_id", *keys])
        for r in records:
            for h in r.history:
                writer.writerow([r.trial_id, *(h.get(k) for k in keys)])


def run_model(model_name: str, args, sweep_root: Path) -> dict:
    settings = settings_from_args(model_name, args, search_overrides(args))
    sweep_dir = sweep_root / model_name
    if not args.fresh:
        check_sweep_state(sweep_dir, settings)
    summary_file = sweep_dir / "summary.json"
    if summary_file.is_file() and not args.fresh:
        print(f"[{model_name}] sweep finished earlier: nothing to train (use --fresh to run it again)")
        return json.loads(summary_file.read_text())
    from search.storage import check_storage, join, tidy
    from search.sweep import choose_best, connect, node_cpus, node_memory, run_search

    start = time.time()
    data = prepare_for_sweep(settings, args.cache_dir)
    connect(args.address)
    cpus = args.cpus or node_cpus()
    require(
        cpus <= node_cpus(),
        f"--cpus {cpus} is more than any Ray node has ({node_cpus()}); "
        "a trial would wait forever, so ask for fewer",
    )
    budget = parse_bytes(settings.search.memory_budget)
    require(
        budget <= node_memory(),
        f"the memory budget {settings.search.memory_budget} per trial is more than any Ray node offers "
        f"({node_memory() / 2**30:.1f} GiB); lower --memory-budget or add a node with more memory",
    )
    experiment = join(check_storage(settings.search.storage, sweep_root), model_name)
    begin_sweep(sweep_dir, settings, args.fresh, experiment)
    inputs, infos = sweep_inputs(settings, data, args.cache_dir)
    print(
        f"[{model_name}] searching {settings.search.trials} trials, {settings.search.concurrent} at a time, "
        f"{cpus} CPU(s) and {settings.search.memory_budget} each, trials in {experiment}",
        flush=True,
    )
    records, searcher_study = run_search(
        settings,
        inputs,
        infos,
        data.num_classes,
        experiment,
        cpus,
        model_name,
        on_trial=lambda record: add_trial(sweep_root, model_name, record, settings.space),
    )
    search_wall = time.time() - start  # this run's; an interrupted earlier run's time is not counted
    write_trials(sweep_dir, records)
    study = write_study(sweep_root, model_name, records, settings.space)
    tidy(experiment, {r.path.rstrip("/").rsplit("/", 1)[-1] for r in records})
    counts = {s: sum(r.state == s for r in records) for s in STATES}
    best = choose_best(records)
    if best is None:
        reasons = sorted({r.reason for r in records if r.reason})
        hint = f"first reason: {reasons[0]}" if reasons else "raise --memory-budget or widen the search space"
        raise UserError(f"no {model_name} trial reached a validation loss ({counts}); {hint}")
    print(
        f"[{model_name}] best trial {best.trial_id}: val loss {best.best_val_loss:.4f}, val acc "
        f"{best.best_val_acc:.4f}; retraining on {settings.search.seeds} seeds",
        flush=True,
    )
    best_settings = apply_params(settings, best.params)
    all_inputs, info = model_inputs(best_settings, data, ("train", "val", "test"), args.cache_dir)
    report = data.report
    if "embeddings" in info:
        report = report | {"embeddings": info["embeddings"]}
        print(f"[{model_name}] " + format_report(report).splitlines()[-1], flush=True)
    seeds = [settings.train.seed + i for i in range(settings.search.seeds)]
    model_dir = sweep_dir / "model"
    result = retrain(
        best_settings, all_inputs, info, data.num_classes, seeds, cpus, model_dir, data.test.clean_texts
    )
    save_bundle(model_dir, best_settings, data, info, result)
    save_artifacts(sweep_dir, best_settings, data)
    summary = {
        "model": model_name,
        "dataset": data.name,
        "trials": counts | {"total": len(records)},
        "optuna_states": _optuna_states(study),  # the persistent study (optuna.db)
        "searcher_states": _optuna_states(searcher_study),  # what TPE itself was told
        "best_trial": best.trial_id,
        "best_params": best.params,
        "best_val_loss": best.best_val_loss,
        "best_val_acc": best.best_val_acc,
        "best_trial_peak_rss_mb": best.peak_rss_mb,
        "search_wall_s": search_wall,
        "wall_s": time.time() - start,
        "retrain": result,
        "data_report": report,
        "provenance": provenance(),
        # the driver's own peak (data, Ray's client, the retrain); trials run in their own processes
        "driver_peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
    }
    summary_file.write_text(json.dumps(summary, indent=2))
    (sweep_dir / "test_metrics.json").write_text(json.dumps(result["seeds"], indent=2))
    return summary


def _optuna_states(study) -> dict:
    if study is None:
        return {}
    states = [t.state.name for t in study.trials]
    return {s: states.count(s) for s in sorted(set(states))}


def save_artifacts(sweep_dir: Path, best_settings, data) -> None:
    best = best_settings.as_dict()
    (sweep_dir / "best_config.yaml").write_text(
        yaml.safe_dump({"model": best["model"], "train": best["train"]}, sort_keys=False)
    )
    (sweep_dir / "data_report.json").write_text(json.dumps(data.report, indent=2))


def ensure_baseline(sweep_root: Path, data, identity: str) -> None:
    """The TF-IDF row, computed again whenever the data it was computed on is not this data."""
    path = sweep_root / "baseline.json"
    if not path.is_file() or json.loads(path.read_text()).get("dataset") != identity:
        path.write_text(json.dumps(tfidf_baseline(data) | {"dataset": identity}, indent=2))


@cli_entry
def main(argv=None):
    args = parse_args(argv)
    require(args.trials is None or args.trials >= 1, f"--trials must be at least 1, got {args.trials}")
    require(args.cpus is None or args.cpus >= 1, f"--cpus must be at least 1, got {args.cpus}")
    require(args.seeds is None or args.seeds >= 1, f"--seeds must be at least 1, got {args.seeds}")
    require(
        args.concurrent is None or args.concurrent >= 1,
        f"--concurrent must be at least 1, got {args.concurrent}",
    )
    require(
        not (args.config and args.model == "all"),
        "--config replaces one model's YAML; use it with a single "
        "--model, or edit configs/<model>.yaml for --model all",
    )
    if args.memory_budget:
        parse_bytes(args.memory_budget)
    models = list(MODELS) if args.model == "all" else [args.model]
    first = settings_from_args(models[0], args, search_overrides(args))
    sweep_root = Path(args.runs_dir) / (args.name or default_name(first))
    identity = check_dataset(sweep_root, first, args.fresh)
    data = prepare_for_sweep(first, args.cache_dir)
    print(format_report(data.report), flush=True)
    start = time.time()
    for model_name in models:
        run_model(model_name, args, sweep_root)
    ensure_baseline(sweep_root, data, identity)
    print("\n" + write_leaderboard(sweep_root, plots=not args.no_plots))
    print(f"\nwall time {time.time() - start:.0f}s; results in {sweep_root}")
    if args.json:
        summaries, baseline = load_sweep(sweep_root)
        summaries = [s for s in summaries if s["model"] in models]
        print(json.dumps(json_summary(summaries, baseline)))


if __name__ == "__main__":
    main()
