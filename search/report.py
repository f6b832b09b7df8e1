"""The leaderboard, the analysis, the plots and report.html of finished sweeps, from what is on disk.

python -m search.report [--name SWEEP] [--runs-dir runs] [--json]
python -m search.report --name imdb --export test.csv [--split val]   # every text with each row's predictions

It works while a sweep runs: it reads the models that have finished and writes its files atomically.
"""

import argparse
import json
from pathlib import Path

from configs.errors import UserError, cli_entry
from search.analysis.leaderboard import json_summary, load_sweep, write_leaderboard
from search.store.layout import RunDir


def finished_sweeps(runs: Path, name: str | None) -> list[RunDir]:
    if name:
        run = RunDir(runs / name)
        if not run.exists():
            raise UserError(
                f"no sweep {name!r} under {runs}; run python -m search.tune first or check --name"
            )
        found = [run]
    else:
        found = [RunDir(p) for p in sorted(runs.glob("*"))] if runs.is_dir() else []
    found = [run for run in found if run.exists() and run.finished_models([])]
    if not found:
        raise UserError(f"no finished sweep under {runs}; run python -m search.tune --model lstm first")
    return found


def export(runs: Path, name: str | None, path: Path, split: str) -> None:
    from search.analysis.export import split_frame, write_frame
    from search.analysis.leaderboard import build

    if path.suffix.lower() not in (".csv", ".jsonl", ".parquet"):
        raise UserError(f"--export {path}: give a file name ending in .csv, .jsonl or .parquet")
    if not path.parent.is_dir():
        raise UserError(f"--export {path}: the folder {path.parent} does not exist")
    found = finished_sweeps(runs, name)
    if len(found) > 1:
        raise UserError(f"--export writes one sweep: pass --name (one of {', '.join(r.name for r in found)})")
    frame = split_frame(build(found[0]), split)
    write_frame(frame, path)
    print(f"{len(frame)} texts of the {split} split of {found[0].name}, with each row's predictions: {path}")


@cli_entry
def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m search.report",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--name", help="sweep name (default: every sweep under --runs-dir)")
    parser.add_argument("--runs-dir", default="runs", help="where sweeps live (default ./runs)")
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object as the last line of stdout"
    )
    parser.add_argument(
        "--export",
        help="write every text of --split with its label and each row's predicted label and probabilities "
        "(.csv, .jsonl or .parquet), for reading the errors",
    )
    parser.add_argument("--split", choices=("test", "val"), default="test", help="what --export writes")
    args = parser.parse_args(argv)
    if args.export:
        export(Path(args.runs_dir), args.name, Path(args.export), args.split)
        return
    payload = {}
    for run in finished_sweeps(Path(args.runs_dir), args.name):
        print(write_leaderboard(run) + "\n")
        payload[run.name] = json_summary(*load_sweep(run))
    if args.json:
        print(json.dumps(payload if len(payload) > 1 else next(iter(payload.values()))))


if __name__ == "__main__":
    main()
