"""report.html: the sweep's tables and plots in one page that opens offline (images by relative path)."""

import html
from pathlib import Path

from tabulate import tabulate

from search.analysis.rows import served_name
from search.analysis.tables import (
    DETAIL_HEADERS,
    DETAIL_NOTE,
    KNOB_HEADERS,
    analysis_lines,
    detail_rows,
    knob_table,
    main_headers,
    main_rows,
    served_line,
)
from search.store import files

STYLE = """
body { font-family: sans-serif; margin: 2em; max-width: 1200px; }
table { border-collapse: collapse; margin: 0.5em 0 1.5em; }
th, td { border: 1px solid #ccc; padding: 3px 8px; text-align: left; font-size: 0.9em; }
img { max-width: 100%; margin: 0.5em 0; display: block; }
"""


def _table(rows, headers) -> str:
    return tabulate(rows, headers=headers, tablefmt="html")


def write_html(board, images: list[Path]) -> Path:
    """board: search.analysis.leaderboard.Board."""
    run = board.run

    def img(path: Path) -> str:
        src = html.escape(path.relative_to(run.root).as_posix())
        return f'<img src="{src}" alt="{html.escape(path.stem)}">'

    body = [
        f"<h1>sweetspot: {html.escape(run.name)} ({html.escape(board.dataset)})</h1>",
        "<h2>Leaderboard (test set: each row's seed-averaged predictions, 95% bootstrap intervals over the "
        "texts)</h2>",
        _table(main_rows(board.rows, detailed=True), main_headers(True)),
        *(f"<p>{html.escape(note)}</p>" for note in board.notes),
        f"<p>{html.escape(served_line(served_name(board.best), board.served))}</p>",
        _table(detail_rows(board.summaries, board.analyses, board.baseline), DETAIL_HEADERS),
        f"<p>{html.escape(DETAIL_NOTE)}</p>",
    ]
    by_model = {}
    for path in images:
        by_model.setdefault(path.stem.split("-")[0], []).append(path)
    for s in board.summaries:
        model, analysis = s.model, board.analyses[s.model]
        title, notes = analysis_lines(model, analysis)
        body += [f"<h2>{html.escape(model)}</h2>", f"<p>{html.escape(title)}</p>"]
        if "knobs" in analysis:
            body.append(_table(knob_table(analysis), KNOB_HEADERS))
        body += [f"<p>{html.escape(note)}</p>" for note in notes]
        body += [img(p) for p in by_model.get(model, [])]
    body += ["<h2>Accuracy against size and speed</h2>", *(img(p) for p in by_model.get("tradeoff", []))]
    page = (
        '<!doctype html>\n<html lang="en"><head><meta charset="utf-8">'
        f"<title>sweetspot {html.escape(run.name)}</title><style>{STYLE}</style></head>\n<body>\n"
        + "\n".join(body)
        + "\n</body></html>\n"
    )
    files.write_text(run.html_path, page)
    return run.html_path
