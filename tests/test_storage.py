"""search.sweep.storage without a cluster: where trials go, what a finished sweep keeps, and bad storage."""

import json

import pytest

from configs.errors import UserError
from search.store.layout import STORAGE_MARKER as MARKER
from search.store.layout import RunDir
from search.store.records import TrialCounts
from search.sweep.storage import join, tidy, write_marker


def test_tidy_keeps_known_trials_results_and_drops_checkpoints_and_orphans(tmp_path):
    experiment = tmp_path / "lstm"
    for trial in ("known", "orphan"):
        (experiment / trial / "checkpoint_000001").mkdir(parents=True)
        (experiment / trial / "result.json").write_text("{}\n")
    (experiment / "experiment_state-2026.json").write_text("{}")  # Ray's own files stay
    (experiment / "not-a-trial").mkdir()  # a folder without results is not a trial: left alone
    tidy(str(experiment), {"known"})
    assert (experiment / "known" / "result.json").is_file()
    assert not (experiment / "known" / "checkpoint_000001").exists()
    assert not (experiment / "orphan").exists()
    assert (experiment / "experiment_state-2026.json").is_file() and (experiment / "not-a-trial").is_dir()


def test_a_marker_is_written_and_read_back(tmp_path):
    token = write_marker(str(tmp_path / "shared"))
    assert (tmp_path / "shared" / MARKER).read_text() == token
    assert join("s3://bucket/prefix/", "imdb", "lstm") == "s3://bucket/prefix/imdb/lstm"
    assert join(str(tmp_path), "imdb") == str(tmp_path / "imdb")


@pytest.mark.parametrize(
    "storage,expected",
    [("nosuch://bucket/x", "cannot open it"), ("{tmp}/file/sub", "cannot write there")],
    ids=["unknown scheme", "under a file"],
)
def test_storage_that_cannot_be_used_is_one_clear_error(storage, expected, tmp_path):
    (tmp_path / "file").write_text("a file, not a folder")
    with pytest.raises(UserError, match=expected):
        write_marker(storage.format(tmp=tmp_path))


def test_a_trial_resumed_from_an_older_checkpoint_has_each_epoch_once(tmp_path):
    """A driver killed between a result and its next state save resumes the trial from an older checkpoint:
    Ray's log then holds epochs 1-3 and again 2-4. The history is the run the trial went on with."""
    from search.store.layout import RESULT
    from search.sweep.results import read_history

    logged = [(1, 0.9), (2, 0.8), (3, 0.7), (2, 0.75), (3, 0.65), (4, 0.6)]
    lines = [json.dumps({"training_iteration": i, "val_loss": loss}) for i, loss in logged]
    (tmp_path / RESULT).write_text("\n".join(lines) + "\n")
    history = read_history(str(tmp_path))
    assert [(h["training_iteration"], h["val_loss"]) for h in history] == [
        (1, 0.9),
        (2, 0.75),
        (3, 0.65),
        (4, 0.6),
    ]


def test_how_a_sweep_runs_may_change_on_a_resume_and_what_it_searches_may_not(tmp_path, capsys):
    """The memory budget, trials at once, the retrain's seeds, threads and a replay's pace may change when a
    sweep is run again, each with a line saying what it applies to; a setting that changes what is searched
    is refused with the command that resumes, --fresh, or --name."""
    import pytest

    from configs.errors import UserError
    from search.core.settings import apply_params, load_settings
    from search.store.layout import ModelDir
    from search.sweep.identity import RUNS, _comparable, check_settings

    folder = ModelDir(tmp_path / "lstm")
    folder.root.mkdir()
    settings = load_settings("lstm")
    folder.write_settings(_comparable(settings), {})
    runs = apply_params(
        settings,
        {
            "search.memory_budget": "4GB",
            "search.concurrent": 2,
            "search.seeds": 5,
            "train.threads": 1,
            "search.replay_epoch_s": 0.5,
        },
    )
    assert check_settings(folder, runs) is False
    said = capsys.readouterr().out
    for key in RUNS:
        assert f"{key} was " in said and "this applies to" in said
    with pytest.raises(UserError, match=r"train.max_epochs=20.*--fresh.*search.memory_budget"):
        check_settings(folder, apply_params(settings, {"train.max_epochs": 3}))


def test_a_killed_writers_temporaries_go_and_a_growing_sweep_forgets_its_old_summary(tmp_path, monkeypatch):
    """Every write goes through a temporary file: what a kill -9 left is removed when the sweep's lock is
    next taken. A sweep asked to grow is no longer finished: its old summary.json goes before it searches,
    so a growth run that is interrupted is not read by the report as the finished sweep it was."""
    import pytest

    from search.core.settings import load_settings
    from search.store.layout import RunDir
    from search.sweep import pipeline
    from search.sweep.pipeline import SweepOptions, sweep_model

    run = RunDir(tmp_path / "imdb")
    left = [run.root / ".leaderboard.json.tmp123", run.root / "lstm" / ".summary.json.tmp9"]
    left += [
        run.root / "lstm" / "model" / ".meta.json.tmp7",
        run.root / "lstm" / "predictions" / ".x.npz.tmp1",
    ]
    for path in left:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("half")
    kept = run.root / "lstm" / "summary.json"
    kept.write_text("{}")
    run.remove_temporaries()
    assert not any(p.exists() for p in left) and kept.exists()

    class Done:
        trials = TrialCounts(3, 0, 0, 3)
        seeds = [42, 43, 44]

    monkeypatch.setattr(run.model("lstm").__class__, "read_summary", lambda self: Done())
    monkeypatch.setattr(pipeline, "check_settings", lambda *a, **k: False)

    def interrupted(*args):
        raise KeyboardInterrupt

    monkeypatch.setattr(pipeline, "_open", interrupted)
    with pytest.raises(KeyboardInterrupt):
        sweep_model(load_settings("lstm", {"search.trials": 5}), run, SweepOptions(), data=None)
    assert not kept.exists()  # asked for 5 of a finished 3: the old result is gone before the search


def test_a_summary_round_trips_typed_with_its_retrain_and_each_form_of_the_default(tmp_path):
    """summary.json's retrain, seeds, epochs and default come back as the records they were written from; the
    engine's epoch fields and the store's are the same list (a field added to one must reach the other)."""
    import dataclasses

    from search.engine import EpochStats
    from search.store.records import HISTORY_KEYS, Epoch, Retrain, SeedRun, Skipped, Summary, TrialCounts

    assert [f.name for f in dataclasses.fields(EpochStats)] == [f.name for f in dataclasses.fields(Epoch)]
    assert HISTORY_KEYS[-1] == "peak_rss_mb"
    epoch = Epoch(1, 0.7, 0.6, 0.65, 0.62, 1e-3, 0.5, 2.0, False, False)
    scores = {"accuracy": 0.8, "precision": 0.7, "recall": 0.9, "f1": 0.75, "confusion": [[4, 1], [1, 4]]}
    runs = [
        SeedRun(s, scores | {"accuracy": a}, 1, 1, 0.6, [epoch], 2.0, 900.0, False, False, 10, 8)
        for s, a in ((1, 0.8), (2, 0.9))
    ]
    retrain = Retrain.of(runs)
    assert retrain.mean["accuracy"] == pytest.approx(0.85) and retrain.std["accuracy"] == pytest.approx(
        0.0707, abs=1e-4
    )
    folder = RunDir(tmp_path / "runs" / "x").model("lstm")
    for default in (None, Skipped("the default configuration failed in the search: diverged"), retrain):
        summary = Summary(
            "lstm", "x", TrialCounts(2, 0, 0, 2), "t1", {}, 0.6, 0.7, 1.0, retrain, {}, default=default
        )
        folder.write_summary(summary)
        back = folder.read_summary()
        assert back == summary and back.seeds == [1, 2] and back.retrain.seeds[0].history == [epoch]
        assert back.default_retrain == (default if isinstance(default, Retrain) else None)
    written = json.loads((folder.root / "summary.json").read_text())
    assert written["retrain"]["seeds"][1]["test"]["accuracy"] == 0.9  # the file keeps its keys
    assert written["retrain"]["seeds"][0]["history"][0]["val_acc"] == 0.62
