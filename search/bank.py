"""Curve banks: record learning curves once, then replay searches on them without training.

python -m search.bank record rt-lstm --configs 300          # resumable; appends to the task's bank
python -m search.bank show rt-lstm                          # what a bank holds and what it cost
python -m search.bank replay rt-lstm --sampler tpe --scheduler asha --trials 20 --seed 3

A replayed sweep runs the product's own search (Ray Tune, Optuna, ASHA, resume, budgets) with a trainable
that reports the recorded curve of the nearest recorded configuration on a simulated clock: the sum of the
recorded epochs' CPU seconds (search/sweep/replay.py). Banks ship in search/benchmarks/banks/; --bank reads
another file (a bank recorded with --out).
"""

import argparse
import json
from pathlib import Path

from configs.errors import UserError, cli_entry
from search.benchmarks.bank import TASKS, cpu_hours, record, seed_pairs
from search.benchmarks.replayed import replay_sweep
from search.core.settings import parse_duration
from search.sweep.replay import load_bank, shipped_bank


def bank_path(task: str, given: str | None) -> Path:
    return Path(given) if given else shipped_bank(task)


def show(args) -> None:
    bank = load_bank(bank_path(args.task, args.bank))
    configs = bank.configs()
    twice = seed_pairs(bank)
    print(
        f"{bank.meta['title']}: {len(configs)} configurations, {len(bank.runs)} runs "
        f"({len(twice)} configurations on two seeds), {cpu_hours(bank):.2f} CPU hours"
    )
    for session in bank.meta.get("sessions", []):
        print(
            f"  recorded from {session['started']}: commit {session['commit']}, torch {session['torch']}, "
            f"{session['cpu']}"
        )


def replay(args) -> None:
    bank = load_bank(bank_path(args.task, args.bank))
    search = {
        "search.sampler": args.sampler,
        "search.scheduler": args.scheduler,
        "search.trials": args.trials,
        "search.seed": args.seed,
        "search.startup_trials": args.startup_trials,
        "search.grace_period": args.grace_period,
        "search.reduction_factor": args.reduction_factor,
    }
    budget = parse_duration(args.time_budget) if args.time_budget else None
    outcome = replay_sweep(bank, {k: v for k, v in search.items() if v is not None}, budget)
    print(outcome.describe())
    if args.json:
        print(json.dumps(outcome.to_dict()))


@cli_entry
def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m search.bank",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    verbs = parser.add_subparsers(dest="verb", required=True)
    rec = verbs.add_parser("record", help="train configurations of a task and append their curves")
    rec.add_argument("task", choices=sorted(TASKS))
    rec.add_argument("--configs", type=int, default=300, help="configurations to have in all (default 300)")
    rec.add_argument("--limit", help="stop after the run in progress once this much wall time passed (2h)")
    rec.add_argument("--bank", help="the bank's file (default: the shipped one in search/benchmarks/banks/)")
    see = verbs.add_parser("show", help="what a bank holds")
    see.add_argument("task", choices=sorted(TASKS))
    see.add_argument("--bank", help="the bank's file")
    rep = verbs.add_parser("replay", help="one replayed sweep with these search settings")
    rep.add_argument("task", choices=sorted(TASKS))
    rep.add_argument("--bank", help="the bank's file")
    rep.add_argument("--sampler", choices=("tpe", "random", "qmc"))
    rep.add_argument("--scheduler", choices=("asha", "fifo"))
    rep.add_argument("--trials", type=int)
    rep.add_argument("--seed", type=int, default=0, help="the search seed (default 0)")
    rep.add_argument("--startup-trials", type=int, help="TPE's random trials before it models")
    rep.add_argument("--grace-period", type=int, help="ASHA's first rung, in epochs")
    rep.add_argument("--reduction-factor", type=int, help="ASHA keeps 1 in this many at each rung")
    rep.add_argument("--time-budget", help="simulated CPU time for the whole search (e.g. 10m)")
    rep.add_argument("--json", action="store_true", help="print the outcome as one JSON line too")
    args = parser.parse_args(argv)
    if args.verb == "record":
        if args.configs < 1:
            raise UserError(f"--configs {args.configs}: record at least 1 configuration")
        limit = parse_duration(args.limit) if args.limit else None
        path = record(TASKS[args.task], args.configs, bank_path(args.task, args.bank), limit)
        print(f"bank: {path}")
    elif args.verb == "show":
        show(args)
    else:
        replay(args)


if __name__ == "__main__":
    main()
