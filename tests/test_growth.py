"""Sweeps that grow: more trials on a finished sweep, a changed space with --extend-space, a warm start from
an earlier sweep, and a time budget."""

import time
from pathlib import Path

import pytest
import yaml
from sweep_checks import check_study, load_study
from sweeps import copy_sweep, results, run, summary, tune_cmd

import configs
from search.store.layout import RunDir


def rnn_cmd(finished_sweep, runs, *extra):
    return tune_cmd(runs, "--model", "rnn", "--epochs", "3", *extra)


def test_a_sweep_grows_with_the_same_searcher_and_never_shrinks(finished_sweep, tmp_path):
    runs = copy_sweep(finished_sweep.runs, tmp_path / "runs")
    folder = RunDir(runs / "imdb").model("rnn")
    before = results(folder.root)
    code, out, err = run(rnn_cmd(finished_sweep, runs, "--trials", "2"))
    assert code == 0 and "asked for 2 trials, but this sweep finished 3" in out, err[-2000:]
    assert summary(runs, "rnn").trials.total == 3
    code, out, err = run(rnn_cmd(finished_sweep, runs, "--trials", "5"))
    assert code == 0, err[-3000:]
    s = summary(runs, "rnn")
    assert s.trials.total == 5 and s.search.asked == 5
    after = results(folder.root)
    assert len(after) == 5 and all(
        after[name] == rows for name, rows in before.items()
    )  # the 3 kept as they were
    # The same searcher went on: its own study holds all five (a new one would hold two), as the records say.
    states = {
        "COMPLETE": s.trials.completed,
        "PRUNED": s.trials.stopped_early,
        "FAIL": s.trials.failed,
    }
    assert s.searcher_states == s.optuna_states == {k: v for k, v in states.items() if v}
    check_study(runs / "imdb", "rnn", 5)


def test_a_changed_space_is_refused_without_the_flag_and_extended_with_it(finished_sweep, tmp_path):
    runs = copy_sweep(finished_sweep.runs, tmp_path / "runs")
    shipped = yaml.safe_load((Path(configs.__file__).parent / "rnn.yaml").read_text())
    space = shipped["search"]["space"]
    space["model.dropout"] = {"uniform": [0.0, 0.7]}  # wider: every earlier trial lies inside
    space["model.nonlinearity"] = {
        "choice": ["relu", "tanh"]
    }  # new: the earlier trials had relu, the default
    config = tmp_path / "rnn.yaml"
    config.write_text(yaml.safe_dump(shipped))
    cmd = rnn_cmd(finished_sweep, runs, "--trials", "3", "--config", str(config))
    code, out, err = run(cmd)
    lines = err.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "--extend-space" in lines[0] and "model.dropout" in lines[0], err
    code, out, err = run(cmd + ["--extend-space"])
    assert code == 0, err[-3000:]
    run_dir = RunDir(runs / "imdb")
    s = summary(runs, "rnn")
    assert s.trials.total == 3 and s.search.told == 3  # the three earlier trials reached the new study
    assert "3 earlier trials inform the sampler" in out
    earlier = run_dir.model("rnn").root / "previous" / "space-1"
    assert len(results(earlier)) == 3 and (earlier / "summary.json").is_file()
    assert len(load_study(run_dir.root, "rnn@space-1").trials) == 3  # the old study, kept beside
    check_study(run_dir.root, "rnn", 3)  # the new one: its own trials only
    assert {r["model.nonlinearity"] for r in run_dir.model("rnn").read_trial_rows()} <= {"relu", "tanh"}


def test_a_warm_start_informs_the_sampler_and_never_counts(finished_sweep, tmp_path):
    """The finished sweep's real trials inform a new sweep whose own trials replay a curve bank: what the
    sampler proposes is what is tested."""

    def sweep(runs, *extra):
        cmd = tune_cmd(
            runs, "--model", "lstm", "--trials", "2", "--epochs", "2", "--seeds", "1", "--no-default"
        )
        cmd += ["--replay", "tiny-lstm"]
        code, out, err = run(cmd + ["--set", "search.startup_trials=3", *extra])
        assert code == 0, err[-3000:]
        return out

    out = sweep(tmp_path / "warm", "--warm-start", str(finished_sweep.run.root))
    sweep(tmp_path / "cold")
    warm, cold = RunDir(tmp_path / "warm" / "imdb"), RunDir(tmp_path / "cold" / "imdb")
    s = warm.model("lstm").read_summary()
    assert s.search.told == 5 and s.trials.total == 2 and "5 earlier trials inform the sampler" in out
    rows = warm.model("lstm").read_trial_rows()
    assert s.best_trial in {r["trial_id"] for r in rows}  # chosen from its own trials only
    assert s.searcher_states == s.optuna_states  # the told trials are not among its own
    assert len(load_study(warm.root, "lstm").trials) == 2  # nor in the study that importance reads
    # The second trial is TPE's (3 startup trials, all there with the 5 told): it differs from a cold start's.
    cold_rows = cold.model("lstm").read_trial_rows()
    knobs = [k for k in rows[0] if k.startswith(("model.", "train.", "data."))]
    assert [rows[0][k] for k in knobs] == [cold_rows[0][k] for k in knobs]  # the default configuration first
    assert [rows[1][k] for k in knobs] != [cold_rows[1][k] for k in knobs]
    assert "informed the sampler" in (warm.root / RunDir.LEADERBOARD_MD).read_text()


def test_a_time_budget_ends_the_whole_command_and_a_rerun_continues(tmp_path):
    """Trials replay a curve bank at half a second an epoch (the budget is what is tested); the retrain trains
    for real and the budget keeps room for it."""
    runs = tmp_path / "runs"
    budget = 60  # the budget keeps 25 s for the report and Ray's exit: 40 s left room for one trial
    cmd = tune_cmd(
        runs, "--model", "lstm", "--trials", "500", "--epochs", "3", "--seeds", "1", "--no-default"
    )
    cmd += ["--replay", "tiny-lstm", "--replay-epoch-s", "0.5"]
    started = time.time()
    code, out, err = run(cmd + ["--time-budget", f"{budget}s"])
    wall = time.time() - started
    assert code == 0, err[-3000:]
    assert wall <= budget * 1.1, wall
    s = summary(runs)
    assert s.search.stopped_by == "time budget" and 2 <= s.trials.total < 500, s.trials
    assert f"after {s.trials.total} of 500 trials" in out
    ran = s.trials.total
    started = time.time()
    code, out, err = run(cmd + ["--time-budget", "30s"])  # another budget: the same sweep, continued
    assert code == 0, err[-3000:]
    assert time.time() - started <= 30 * 1.1
    assert summary(runs).trials.total > ran  # the rerun's first trial always runs


@pytest.mark.parametrize("text", ["1h", "90s", "15m", "2m30s"])
def test_durations_read_as_people_write_them(text):
    from search.core.settings import parse_duration

    assert parse_duration(text) == {"1h": 3600, "90s": 90, "15m": 900, "2m30s": 150}[text]


def test_warm_start_tells_the_earlier_scores_of_the_trials_inside_todays_space(finished_sweep):
    """What a warm start tells the sampler: each earlier scored trial's configuration and best validation
    loss, and none of the trials that lie outside today's (narrowed) space."""
    from sweep_checks import same_value

    from search.core.settings import load_settings
    from search.core.space import parse_rule
    from search.sweep.warmstart import told_points

    rows = [r for r in finished_sweep.run.model("lstm").read_trial_rows() if r["best_val_loss"]]
    settings = load_settings("lstm")

    def told(settings) -> list[tuple]:
        points = told_points(settings, [finished_sweep.run])
        out = []
        for point in points:  # the earlier trial it came from: the one with the same configuration
            (row,) = [r for r in rows if all(same_value(v, r[k]) for k, v in point["params"].items())]
            assert (
                point["value"] == pytest.approx(float(row["best_val_loss"])) and point["state"] == "COMPLETE"
            )
            out.append(row["trial_id"])
        return sorted(out)

    assert told(settings) == sorted(r["trial_id"] for r in rows) and len(rows) >= 3
    lrs = sorted(float(r["train.lr"]) for r in rows)
    low = (lrs[0] + lrs[1]) / 2  # today's space leaves out the earlier trial of the lowest learning rate
    settings.space["train.lr"] = parse_rule("train.lr", {"loguniform": [low, 1.0e-2]})
    inside = sorted(r["trial_id"] for r in rows if float(r["train.lr"]) >= low)
    assert told(settings) == inside and len(inside) < len(rows)
