import optuna
import pytest
from ray import tune

from configs.errors import UserError
from search.core.settings import load_settings
from search.core.space import Rule, seed_point
from search.store.records import TrialCounts, TrialRecord
from search.sweep.results import choose_best, counts
from search.sweep.searcher import Gate, PruneAwareOptunaSearch


def make():
    return PruneAwareOptunaSearch(
        space={"model": {"dropout": tune.uniform(0, 0.5)}}, metric="best_val_loss", mode="min", seed=0
    )


def test_scheduler_stopped_trial_reaches_optuna_as_pruned():
    searcher = make()
    for tid in ("a", "b", "c"):
        searcher.suggest(tid)
        searcher.on_trial_result(tid, {"best_val_loss": 0.7, "training_iteration": 1})
    searcher.on_trial_complete("a", {"best_val_loss": 0.6, "training_iteration": 3, "finished": True})
    searcher.on_trial_complete("b", {"best_val_loss": 0.7, "training_iteration": 1, "finished": False})
    searcher.on_trial_complete("c", {"best_val_loss": 0.7, "training_iteration": 1}, error=True)
    states = [t.state for t in searcher.study.trials]
    assert states == [
        optuna.trial.TrialState.COMPLETE,
        optuna.trial.TrialState.PRUNED,
        optuna.trial.TrialState.FAIL,
    ]
    assert searcher.study.best_value == 0.6


def test_the_time_budgets_gate_is_the_searchers_own_and_never_saved_with_it(tmp_path):
    from ray import cloudpickle
    from ray.tune.search import Searcher

    searcher, still = make(), [True]
    searcher.gate = Gate(lambda: still[0])  # a closure, as run_search's: plain pickle cannot save it
    assert searcher.suggest("a") is not None and not searcher.gate.closed
    still[0] = False
    assert searcher.suggest("b") == Searcher.FINISHED and searcher.gate.closed
    # Ray saves the searcher into the experiment's state and cloudpickles it into tuner.pkl: without the gate.
    path = tmp_path / "searcher.pkl"
    searcher.save(str(path))
    assert cloudpickle.loads(cloudpickle.dumps(searcher)).gate is None
    restored = make()
    restored.restore(str(path))
    assert restored.gate is None and len(restored.study.trials) == 1
    # run_search gives the gate before Tune restores the saved state during fit(): the restore keeps it.
    resumed = make()
    resumed.gate = Gate(lambda: False)
    resumed.restore(str(path))
    assert resumed.suggest("c") == Searcher.FINISHED and resumed.gate.closed


def test_plain_ray_searcher_would_call_the_stopped_trial_complete():
    # Why the subclass exists: Ray's own OptunaSearch records a truncated trial as COMPLETE.
    from ray.tune.search.optuna import OptunaSearch

    searcher = OptunaSearch(space={"x": tune.uniform(0, 1)}, metric="m", mode="min", seed=0)
    searcher.suggest("t")
    searcher.on_trial_result("t", {"m": 0.9, "training_iteration": 1})
    searcher.on_trial_complete("t", {"m": 0.9, "training_iteration": 1, "finished": False})
    assert searcher._ot_study.trials[0].state == optuna.trial.TrialState.COMPLETE


def test_space_from_yaml_keeps_dotted_keys_and_seed_config_first():
    settings = load_settings("lstm")
    assert settings.space["model.dropout"] == Rule("uniform", (0.0, 0.6))
    assert settings.space["train.batch_size"] == Rule("choice", (16, 32, 64))
    point = seed_point(settings.space, {key: settings.get(key) for key in settings.space})
    assert point["model.embed_dim"] == 64 and point["train.lr"] == 1e-3
    settings = load_settings("lstm", sets=["model.embed_dim=48"])  # outside the choices: no seed point
    assert seed_point(settings.space, {key: settings.get(key) for key in settings.space}) is None


def test_dotted_names_pass_through_rays_optuna_search_unchanged():
    settings = load_settings("lstm")
    searcher = PruneAwareOptunaSearch(
        space={k: rule.domain() for k, rule in settings.space.items()},
        metric="best_val_loss",
        mode="min",
        seed=0,
        points_to_evaluate=[{k: settings.get(k) for k in settings.space}],
    )
    config = searcher.suggest("t")
    assert set(config) == set(settings.space)  # flat, dotted: the trial applies it as it is
    assert config["model.embed_dim"] == 64
    assert set(searcher.study.trials[0].params) == set(settings.space)


def test_randint_rule_includes_its_upper_bound():
    rule = Rule("randint", (1, 2))
    searcher = PruneAwareOptunaSearch(
        space={"model.num_layers": rule.domain()}, metric="m", mode="min", seed=0
    )
    values = {searcher.suggest(str(i))["model.num_layers"] for i in range(30)}
    assert values == {1, 2}


def test_selection_picks_an_asha_stopped_trial_with_the_lowest_loss():
    records = [
        TrialRecord("done", "completed", "", {}, epochs=20, best_val_loss=0.592),
        TrialRecord("stopped", "stopped_early", "", {}, epochs=6, best_val_loss=0.551),
        TrialRecord("failed", "failed", "training diverged", {}, epochs=1, best_val_loss=0.1),
        TrialRecord("killed", "failed", "memory budget exceeded", {}),
    ]
    assert choose_best(records).trial_id == "stopped"
    assert choose_best(records[2:]) is None
    assert counts(records) == TrialCounts(completed=1, stopped_early=1, failed=2, total=4)
    assert records[1].row()["state"] == "stopped_early" and str(records[1].state) == "stopped_early"
    with pytest.raises(
        UserError, match="trial edited's state 'finished' is none of completed, stopped_early"
    ):
        TrialRecord("edited", "finished", "", {})  # a hand-edited trials.csv


def test_ray_tunes_private_details_live_in_one_module_checked_against_this_ray():
    """search/sweep/raytune.py reads Ray Tune's private attributes and path conventions, checked against the
    Ray versions it names: an upgrade of Ray fails here until someone has read them again."""
    from pathlib import Path

    import ray

    from search.sweep.raytune import experiment_parts, trial_folder, version_checked

    assert version_checked(ray.__version__), f"Ray {ray.__version__}: read search/sweep/raytune.py again"
    assert not version_checked("2.61.0") and version_checked("2.60.3")
    assert experiment_parts("/runs/imdb/lstm/") == ("/runs/imdb", "lstm")
    assert experiment_parts("s3://bucket/imdb/lstm") == ("s3://bucket/imdb", "lstm")
    assert trial_folder("s3://bucket/imdb/lstm/1bcc8c21/") == "1bcc8c21"
    root = Path(__file__).resolve().parents[1] / "search"
    private = [
        str(p.relative_to(root))
        for p in root.rglob("*.py")
        if "_local_tuner" in p.read_text() and p.name != "raytune.py"
    ]
    assert private == []


def test_rays_state_sync_race_on_its_own_temporary_is_quiet_and_other_failures_are_not():
    """Ray Tune's background copy of its experiment state can list a temporary file that Ray's next save
    renames away (seen in CI: an ERROR with a traceback beside the product's one line). After
    quiet_state_sync_race, that failure is dropped from both loggers that report it; any other is kept."""
    import logging

    from search.sweep.raytune import STATE_SYNC_LOGGERS, quiet_state_sync_race

    vanished = (
        "[Errno 2] Failed to open local file '/tmp/ray/session_2026-12-08_00-53-37_938880_6894/artifacts/"
        "lstm/driver_artifacts/.279b258d-8652-4741-bc9c-c64f1130cf6b-tmp-searcher-state-2026-12-08.pkl'. "
        "Detail: [errno 2] No such file or directory"
    )
    missing_state = "[Errno 2] Failed to open local file '/runs/imdb/lstm/experiment_state.json'"
    errors = [FileNotFoundError(vanished), FileNotFoundError(missing_state), PermissionError(vanished)]

    class Kept(logging.Handler):
        seen: list = []

        def emit(self, record):
            self.seen.append(record.exc_info[1] if record.exc_info else record.getMessage())

    quiet_state_sync_race()
    quiet_state_sync_race()  # twice (one per search of a command): one filter
    for name in STATE_SYNC_LOGGERS:
        logger = logging.getLogger(name)
        assert len(logger.filters) == 1
        handler = Kept()
        logger.addHandler(handler)
        try:
            for error in errors:
                try:
                    raise error
                except OSError:
                    logger.error("Saving experiment state to storage failed with exception: ", exc_info=True)
            logger.warning(
                f"Last sync command failed with the following error:\nFileNotFoundError: {vanished}"
            )
        finally:
            logger.removeHandler(handler)
        assert Kept.seen == errors[1:], name
        Kept.seen.clear()
