"""Section 7: preprocessing throughput of whole corpora, cold and cached."""

import tempfile
import time

from data_pipeline import DataConfig, prepare
from search.benchmarks.common import Context, table


def preprocessing(ctx: Context) -> str:
    from data_pipeline.sources import load_source

    sizes = {"full": ctx.plan.ng_full, "train_size": 600, "val_size": 200, "test_size": 200}
    corpora = [("IMDB", DataConfig(dataset="imdb", **sizes))]
    if ctx.archive:
        corpora.append(("20NG", DataConfig(dataset="20newsgroups", data_path=ctx.archive, **sizes)))
    rows = []
    for label, cfg in corpora:
        start = time.perf_counter()
        source_rows = len(load_source(cfg).texts)
        read = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            data = prepare(cfg, cache)
            cold = time.perf_counter() - start
            splits = data.report["splits"].values()
            docs = sum(s["final"] + s["empty_dropped"] + s["leaked_dropped"] for s in splits)
            start = time.perf_counter()
            prepare(cfg, cache)
            warm = time.perf_counter() - start
        rows.append(
            [
                f"{label}, {docs:,} of {source_rows:,} texts",
                f"{read:.1f}",
                f"{cold:.1f}",
                f"{docs / cold:,.0f}",
                f"{warm:.2f}",
            ]
        )
    if not ctx.archive:
        rows.append(["20NG", "skipped: pass --20ng-archive or set SWEETSPOT_20NG_ARCHIVE", "", "", ""])
    return table(
        "7. Preprocessing throughput",
        "Read, split, clean, tokenize, de-duplicate, vocabulary, encode; a read alone is shown apart.",
        ["corpus", "read s", "prepare s (read included)", "docs/s", "cached rerun s"],
        rows,
    )
