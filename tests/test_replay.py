"""Searches replayed on curve banks: the product's own Ray Tune + Optuna + ASHA path with a trainable that
reports recorded (here: made-up or tiny real) curves on a simulated clock."""

import gzip
import json
import os

import pytest

from configs.errors import UserError
from search.benchmarks.bank import TASKS, point, record, schedule, synthetic_bank, task_settings
from search.benchmarks.replayed import replay_sweep
from search.sweep.replay import append, load_bank, replay_curve

TINY = TASKS["tiny-lstm"]


@pytest.fixture(scope="module")
def ray_local():
    """One local Ray instance in the test process for this module's replays, stopped when the module ends:
    a driver whose Ray is stopped from outside (a `ray stop --force`) dies with it, so none may
    outlive the module that started it."""
    import ray

    from search.sweep.cluster import connect

    connect(None)
    yield
    ray.shutdown()


@pytest.fixture(scope="module")
def bank(tmp_path_factory):
    path = synthetic_bank(TINY, 64, tmp_path_factory.mktemp("bank") / "tiny.jsonl.gz")
    return load_bank(path)


def reversed_bank(bank):
    """The same configurations with the best and the worst curves swapped: what a searcher is told changes,
    nothing else."""
    out = type(bank)(dict(bank.meta), [])
    for run in bank.runs:
        epochs = [[1.4 - e[0], 1.0 - e[1], *e[2:]] for e in run.epochs]
        out.runs.append(type(run)(run.config, run.seed, run.params, run.setup_s, epochs))
    return out


def proposals(replayed) -> list[dict]:
    return [r.params for r in replayed.records]


def test_asha_stops_replayed_trials_and_fifo_does_not(bank, ray_local):
    search = {"search.trials": 12, "search.grace_period": 1, "search.reduction_factor": 2, "search.seed": 1}
    asha = replay_sweep(bank, search | {"search.scheduler": "asha"}, checkpoints=False)
    fifo = replay_sweep(bank, search | {"search.scheduler": "fifo"}, checkpoints=False)
    stopped = [r for r in asha.records if r.state == "stopped_early"]
    assert stopped and all(r.epochs < bank.max_epochs for r in stopped)
    assert all(r.state == "completed" and r.epochs == bank.max_epochs for r in fifo.records)
    assert sum(r.epochs for r in asha.records) < sum(r.epochs for r in fifo.records)


def test_the_simulated_clock_adds_recorded_epoch_costs_and_a_budget_holds(bank, ray_local):
    full = replay_sweep(bank, {"search.trials": 10, "search.scheduler": "fifo"}, checkpoints=False)
    # each made-up epoch costs 1 simulated second, and a FIFO trial runs every epoch
    assert full.clock.now == pytest.approx(10 * bank.max_epochs)
    assert [e.at for e in full.clock.ended] == pytest.approx([bank.max_epochs * i for i in range(1, 11)])
    budget = 4.5 * bank.max_epochs  # simulated seconds, whatever the wall clock says
    cut = replay_sweep(bank, {"search.trials": 10, "search.scheduler": "fifo"}, budget, checkpoints=False)
    assert cut.ended_by_budget
    assert len(cut.records) == 4 and cut.clock.now <= budget


def test_a_resumed_search_obeys_this_commands_budget(bank, ray_local, tmp_path):
    """The searcher a resume restores from disk was saved without a gate: run_search gives it this command's,
    so a grown search stops on this command's budget."""
    where, search = str(tmp_path / "replay"), {"search.scheduler": "fifo"}
    first = replay_sweep(bank, search | {"search.trials": 3}, experiment=where, checkpoints=False)
    assert len(first.records) == 3 and not first.ended_by_budget
    # 1.5 trials' worth of simulated seconds: this command's clock admits one more trial, not two.
    grown = replay_sweep(
        bank, search | {"search.trials": 8}, 1.5 * bank.max_epochs, experiment=where, checkpoints=False
    )
    assert grown.ended_by_budget and len(grown.records) == 4


def test_tpe_uses_what_it_was_told_after_its_startup_trials(bank, ray_local):
    search = {"search.trials": 14, "search.startup_trials": 5, "search.scheduler": "fifo", "search.seed": 3}
    told_good = proposals(replay_sweep(bank, search, checkpoints=False))
    told_bad = proposals(replay_sweep(reversed_bank(bank), search, checkpoints=False))
    # the default configuration, then random draws until 5 trials are done (Optuna counts the default among
    # its start-up trials): the same either way; from the sixth on, TPE models what it was told
    assert told_good[:5] == told_bad[:5]
    assert told_good[5] != told_bad[5]
    rand = search | {"search.sampler": "random"}
    assert proposals(replay_sweep(bank, rand, checkpoints=False)) == proposals(
        replay_sweep(reversed_bank(bank), rand, checkpoints=False)
    )


def test_a_replay_is_deterministic_for_a_search_seed(bank, ray_local):
    search = {"search.trials": 8, "search.grace_period": 1, "search.seed": 5}
    first, again = (replay_sweep(bank, search, checkpoints=False).to_dict() for _ in range(2))
    other = replay_sweep(bank, search | {"search.seed": 6}, checkpoints=False).to_dict()
    assert first == again
    assert first["pick_params"] != other["pick_params"] or first["curve"] != other["curve"]


def test_nearest_configuration_and_its_seed(bank):
    runs = bank.configs()
    for index in (0, 7, 33):
        assert bank.nearest(runs[index][0].params) == index
    moved = dict(runs[7][0].params)
    moved["train.lr"] *= 1.01  # a point never recorded: its nearest recorded neighbour replays
    assert bank.nearest(moved) == 7


def test_replayed_curve_stops_where_the_training_loop_would():
    from search.sweep.replay import Run

    losses = [0.7, 0.6, 0.65, 0.66, 0.67, 0.5]  # no improvement for 3 epochs after epoch 2
    run = Run(0, 42, {}, 0.5, [[v, 1 - v, v, 2.0, 2.0] for v in losses])
    epochs = replay_curve(run, patience=3, max_epochs=6)
    assert [e.epoch for e in epochs] == [1, 2, 3, 4, 5]
    assert epochs[-1].finished and epochs[-1].best_epoch == 2
    assert epochs[0].cost_s == 2.5 and epochs[1].cost_s == 2.0  # set-up counts in the first epoch
    assert [e.epoch for e in replay_curve(run, patience=10, max_epochs=4)] == [1, 2, 3, 4]


def test_recording_continues_and_survives_a_cut_append(tmp_path):
    path = tmp_path / "bank.jsonl.gz"
    record(TINY, 2, path, say=lambda line: None)
    bank = load_bank(path)
    assert [(r.config, r.seed) for r in bank.runs] == schedule(2) == [(0, 42), (0, 43), (1, 42)]
    assert bank.runs[0].params == point(task_settings(TINY), 0)
    assert all(len(r.epochs) == TINY.overrides["train.max_epochs"] for r in bank.runs)
    assert all(e[3] > 0 for r in bank.runs for e in r.epochs)  # CPU seconds
    path.write_bytes(path.read_bytes()[:-9])  # the last run's member cut short, as by a kill
    assert len(load_bank(path).runs) == 2
    record(TINY, 3, path, say=lambda line: None)
    again = load_bank(path)
    assert [(r.config, r.seed) for r in again.runs] == [(0, 42), (0, 43), (1, 42), (2, 42)]
    assert len(again.meta["sessions"]) == 2


def test_a_bank_from_another_space_or_a_bad_file_is_refused(tmp_path, bank):
    other = type(bank)(dict(bank.meta, space={"model.dropout": {"uniform": [0.0, 0.1]}}), bank.runs)
    with pytest.raises(UserError, match="record the bank again"):
        replay_sweep(other, {"search.trials": 2})
    with pytest.raises(UserError, match="no curve bank"):
        load_bank(tmp_path / "missing.jsonl.gz")
    bad = tmp_path / "bad.jsonl.gz"
    with gzip.open(bad, "wt") as out:
        out.write(json.dumps({"config": 0}) + "\n")
    with pytest.raises(UserError, match="no meta line"):
        load_bank(bad)
    append(bad, {"x": 1})
    assert bad.stat().st_size > 0


def test_the_bank_command_says_what_is_wrong_in_one_line(tmp_path, capsys):
    from conftest import run_cli

    from search.bank import main

    for argv, said in (
        (["show", "tiny-lstm", "--bank", str(tmp_path / "none.jsonl.gz")], "no curve bank at"),
        (["replay", "tiny-lstm", "--bank", str(tmp_path / "none.jsonl.gz")], "no curve bank at"),
        (["record", "tiny-lstm", "--configs", "0"], "record at least 1 configuration"),
        (["replay", "tiny-lstm", "--time-budget", "soon"], "is not a duration"),
    ):
        code, _, err = run_cli(main, argv, capsys)
        assert code == 2 and said in err and len(err.strip().splitlines()) == 1, (argv, err)


def test_a_command_builds_settings_prepares_data_and_parses_sizes_once(tmp_path, monkeypatch, ray_local):
    """A real search.tune run (a rehearsal: trials replay, the retrain trains), counted in its driver: the
    settings built once, the data prepared once, the memory budget parsed once (issue 29's bar)."""
    import importlib

    import search.core.settings as settings_module
    from search.tune import main
    from tests.sweeps import TINY as TINY_DATA

    prepare_module = importlib.import_module(
        "data_pipeline.prepare"
    )  # the package exports a function of its name
    calls = {"settings": 0, "prepared": 0, "bytes": 0}

    def counting(name, function):
        def counted(*args, **kwargs):
            calls[name] += 1
            return function(*args, **kwargs)

        return counted

    monkeypatch.setattr(
        settings_module.Settings, "__init__", counting("settings", settings_module.Settings.__init__)
    )
    monkeypatch.setattr(settings_module, "parse_bytes", counting("bytes", settings_module.parse_bytes))
    # every prepare() either reads its cache or builds: counted there, however prepare was imported
    monkeypatch.setattr(prepare_module, "read_cache", counting("prepared", prepare_module.read_cache))
    monkeypatch.setattr(prepare_module, "build", counting("prepared", prepare_module.build))
    argv = ["--model", "lstm", "--replay", "tiny-lstm", "--trials", "3", "--epochs", "2", "--seeds", "1"]
    environ = dict(os.environ)
    try:
        main(argv + [*TINY_DATA[:-2], "--runs-dir", str(tmp_path), "--name", "counted", "--no-plots"])
    finally:  # what the driver sets for itself (Tune's signal handling, its checkpoint period) stays here
        os.environ.clear()
        os.environ.update(environ)
    assert (tmp_path / "counted" / "leaderboard.json").is_file()  # the whole command ran
    assert calls == {"settings": 1, "prepared": 1, "bytes": 1}
