"""One model's sweep, step by step: check that the folder holds this search, search (or resume), record the
trials, pick the best, retrain it (and the default configuration) on several seeds, and summarise.

    data = command_data([settings])  # search.sweep.inputs: once per command, whatever its models
    summary = sweep_model(settings, RunDir(Path("runs/imdb")), SweepOptions(), data)
"""

import dataclasses
import time
from dataclasses import dataclass, field

import yaml

from configs.errors import UserError
from data_pipeline.prepare import PreparedData, format_report
from models import input_lines, input_report
from search.core.provenance import provenance
from search.core.settings import Settings, apply_params
from search.engine.memory import MemoryWatch, peak_total_mb
from search.store import study
from search.store.layout import BundleDir, ModelDir, RunDir
from search.store.records import SUMMARY_FORMAT, Retrain, SearchEnd, Skipped, Summary, TrialRecord, TrialState
from search.sweep.budget import TimeBudget
from search.sweep.bundle import save_bundle
from search.sweep.cluster import check_resources, connect, node_cpus
from search.sweep.extend import set_aside
from search.sweep.identity import begin, check_settings
from search.sweep.inputs import data_for, model_inputs, sweep_inputs
from search.sweep.interrupt import Signals
from search.sweep.raytune import trial_folder
from search.sweep.replay import bank_file, load_bank, replay_trainable
from search.sweep.results import choose_best, counts
from search.sweep.retrain import TrialRun, retrain
from search.sweep.storage import check_storage, join, tidy
from search.sweep.trial import finished_state
from search.sweep.tuner import SearchOutcome, run_search, trainable
from search.sweep.warmstart import points_from, told_points


@dataclass
class SweepOptions:
    cache_dir: str | None = None
    address: str | None = None
    cpus: int | None = None  # per trial; None: every CPU of a node
    fresh: bool = False
    default: bool = True  # retrain the default configuration too, to say what the search bought
    budget: TimeBudget | None = None
    warm_start: list[RunDir] = field(default_factory=list)
    extend_space: bool = False
    signals: Signals = field(default_factory=Signals)  # the command's, its handlers installed by search.tune


@dataclass(frozen=True)
class Sweep:
    """One model's sweep as its steps need it, built once where the sweep starts (`_open`) and passed down."""

    settings: Settings
    run: RunDir
    folder: ModelDir  # the model's folder in the run directory
    data: PreparedData  # the command's data, cut to this model's max_len
    experiment: str  # Ray Tune's experiment folder: a path, or a URI on shared storage
    cpus: int  # per trial, and the retrain's threads
    options: SweepOptions

    @property
    def name(self) -> str:
        return self.settings.model_name

    @property
    def seeds(self) -> list[int]:
        return _seeds(self.settings)


def sweep_model(settings: Settings, run: RunDir, options: SweepOptions, data: PreparedData) -> Summary:
    """data: the command's (search.sweep.inputs.command_data), cut here to this model's."""
    name = settings.model_name
    folder = run.model(name)
    extend = not options.fresh and check_settings(folder, settings, options.extend_space)
    done = None if options.fresh or extend else folder.read_summary()
    if done is not None and settings.search.trials <= done.trials.total and done.seeds == _seeds(settings):
        _say_finished(name, settings.search.trials, done)
        return done
    if done is not None:  # to be finished again: until then the old result is not this sweep's result
        folder.forget_summary()
    start = time.time()
    with MemoryWatch(2**62, hard_limit=False) as driver:  # the driver's own peak for this model
        sweep, told = _open(settings, run, options, data, extend)
        outcome = _search(sweep, told)
        search_wall = time.time() - start  # this run's; an interrupted earlier run's time is not counted
        _record(sweep, outcome.records)
        try:
            best = _pick(name, outcome.records)
            trained = _trial_runs(sweep, outcome.records, best)  # read before tidy removes checkpoints
        finally:
            tidy(sweep.experiment, {trial_folder(r.path) for r in outcome.records})
        if done is not None and done.best_trial == best.trial_id and done.seeds == sweep.seeds:
            print(f"[{name}] the best trial is still {best.trial_id}: its retrain is kept", flush=True)
            tuned, default, report = done.retrain, done.default, done.data_report
        else:
            tuned, default, report = _retrain(sweep, outcome.records, best, trained)
        summary = Summary(
            model=name,
            dataset=sweep.data.name,
            trials=counts(outcome.records),
            best_trial=best.trial_id,
            best_params=best.params,
            best_val_loss=best.best_val_loss,
            best_val_acc=best.best_val_acc,
            search_wall_s=search_wall,
            retrain=tuned,
            data_report=report,
            optuna_states=_states(study.load_study(run, name)),
            searcher_states=outcome.searcher_states,
            best_trial_peak_rss_mb=best.peak_rss_mb,
            wall_s=time.time() - start,
            provenance=provenance(),
            # the driver's own peak (data, Ray's client, the retrain), mapped files aside; trials run in their
            # own processes. With mapped files' pages (ru_maxrss): driver_peak_rss_total_mb.
            driver_peak_rss_mb=driver.peak_mb,
            format=SUMMARY_FORMAT,
            default=default,
            search=SearchEnd(
                asked=settings.search.trials,
                ran=len(outcome.records),
                stopped_by="time budget" if outcome.ended_by_budget else "trials",
                told=outcome.told,
            ),
            driver_peak_rss_total_mb=peak_total_mb(),
        )
    folder.write_summary(summary)
    return summary


def _open(settings: Settings, run: RunDir, options: SweepOptions, data: PreparedData, extend: bool):
    """(the sweep, the trials of a space it searched before that it tells the sampler): Ray joined or
    started, the trial storage opened, the folder begun (or begun again with --fresh)."""
    name = settings.model_name
    folder = run.model(name)
    data = data_for(settings, data)
    connect(options.address)
    options.signals.reclaim()
    cpus = options.cpus or node_cpus()
    check_resources(cpus, settings.search.budget_bytes, settings.search.memory_budget)
    experiment = join(check_storage(settings.search.storage, run.root), name)
    told = []
    if extend:
        earlier = set_aside(run, folder, experiment)
        told = points_from(settings, earlier, "--extend-space")
    begin(run, settings, options.fresh, experiment)
    return Sweep(settings, run, folder, data, experiment, cpus, options), told


def _say_finished(name: str, asked: int, done: Summary) -> None:
    if asked < done.trials.total:
        print(
            f"[{name}] asked for {asked} trials, but this sweep finished {done.trials.total}: showing "
            "those (use --fresh to start a smaller sweep)",
            flush=True,
        )
    else:
        print(f"[{name}] sweep finished earlier: nothing to train (use --fresh to run it again)", flush=True)


def _seeds(settings: Settings) -> list[int]:
    return [settings.train.seed + i for i in range(settings.search.seeds)]


def _search(sweep: Sweep, told: list) -> SearchOutcome:
    settings, options = sweep.settings, sweep.options
    inputs = sweep_inputs(settings, sweep.data, options.cache_dir)
    told = told + told_points(settings, options.warm_start)
    if told:
        print(f"[{sweep.name}] {len(told)} earlier trials inform the sampler (not trials of this search)")
    print(
        f"[{sweep.name}] searching {settings.search.trials} trials, {settings.search.concurrent} at a time, "
        f"{sweep.cpus} CPU(s) and {settings.search.memory_budget} each, trials in {sweep.experiment}",
        flush=True,
    )
    gate = options.budget.gate(settings, options.default) if options.budget else None
    return run_search(
        settings,
        _trainable(settings, inputs, sweep.data.num_classes, sweep.cpus),
        sweep.experiment,
        sweep.name,
        on_trial=lambda record: study.add_trial(sweep.run, sweep.name, record, settings.space),
        told=told,
        gate=gate,
        signals=options.signals,
    )


def _trainable(settings: Settings, inputs, num_classes: int, cpus: int):
    """Trials that train, or (search.replay) trials that replay a bank's curves: a rehearsal of the sweep."""
    if settings.search.replay is None:
        return trainable(settings, inputs, num_classes, cpus)
    bank = load_bank(bank_file(settings.search.replay))
    title = bank.meta.get("title", "a bank")
    print(
        f"[{settings.model_name}] a rehearsal: trials replay the curves of {title} (nothing is trained in "
        "the search; the retrains train)",
        flush=True,
    )
    return replay_trainable(settings, bank, pause_s=settings.search.replay_epoch_s)


def _record(sweep: Sweep, records: list[TrialRecord]) -> None:
    if records:
        sweep.folder.write_trials(records)
    study.write_study(sweep.run, sweep.name, records, sweep.settings.space)


def _pick(name: str, records: list[TrialRecord]) -> TrialRecord:
    best = choose_best(records)
    if best is None:
        found = counts(records)
        reasons = sorted({r.reason for r in records if r.reason})
        hint = f"first reason: {reasons[0]}" if reasons else "widen the search space"
        if any("memory budget" in r for r in reasons):  # every trial failed: nothing is lost by --fresh
            hint += (
                "; run the same command with a larger --memory-budget and --fresh (e.g. --memory-budget 4GB)"
            )
        raise UserError(
            f"no {name} trial reached a validation loss ({found.failed} of {found.total} failed); {hint}"
        )
    print(
        f"[{name}] best trial {best.trial_id}: val loss {best.best_val_loss:.4f}, val acc "
        f"{best.best_val_acc:.4f}",
        flush=True,
    )
    return best


def _trial_runs(sweep: Sweep, records: list[TrialRecord], best: TrialRecord) -> dict[str, TrialRun]:
    """{"tuned"|"default": the search's trial that trained that configuration on the retrain's first seed,
    to its own end} where there is one: the retrain takes it instead of training that seed again."""
    if sweep.settings.search.replay is not None:  # a rehearsal's trials replay curves: nothing was trained
        return {}
    defaults = sweep.settings.point()
    wanted = {"tuned": best.params}
    if sweep.options.default and defaults != best.params:  # else the tuned retrain serves the default too
        wanted["default"] = defaults
    runs = {}
    for role, params in wanted.items():
        trial = next((r for r in records if r.params == params and r.state == TrialState.COMPLETED), None)
        # The seed the trials trained on: train.seed, unless the space searches it.
        seed = apply_params(sweep.settings, params).train.seed
        if trial is None or seed not in sweep.seeds:
            continue
        state = finished_state(trial.path)
        if state is not None:
            runs[role] = TrialRun(trial.trial_id, seed, state, trial.peak_rss_mb)
    return runs


def _retrain(sweep: Sweep, records: list[TrialRecord], best: TrialRecord, trained: dict[str, TrialRun]):
    """(the tuned configuration's retrain summary, the default's or None, the data report): the tuned one
    saved as the bundle, every seed's predictions kept. trained: _trial_runs's."""
    name, data, folder = sweep.name, sweep.data, sweep.folder
    tuned_settings = apply_params(sweep.settings, best.params)
    inputs, info = model_inputs(tuned_settings, data, ("train", "val", "test"), sweep.options.cache_dir)
    report = data.report | input_report(info)
    for line in input_lines(info):
        print(f"[{name}] {line}", flush=True)
    print(f"[{name}] retraining the best configuration on seeds {sweep.seeds}", flush=True)
    tuned, kept = _retrain_on_seeds(sweep, tuned_settings, inputs, info, trained.get("tuned"), folder.bundle)
    save_bundle(folder.bundle, tuned_settings, data, info, tuned)
    for split, predictions in kept.items():
        folder.write_predictions("tuned", split, predictions)
    default = (
        _retrain_default(sweep, records, best, tuned, kept, trained.get("default"))
        if sweep.options.default
        else None
    )
    # Every section that shapes a trial, the data's included (a searched data.max_len): a rerun with
    # --config best_config.yaml trains the pick, not the pick at the default length.
    shaping = {k: v for k, v in tuned_settings.as_dict().items() if k in ("data", "model", "train")}
    best_config = yaml.safe_dump(shaping, sort_keys=False)
    folder.write_results(best_config, data.report, [dataclasses.asdict(r) for r in tuned.seeds])
    return tuned, default, report


def _retrain_on_seeds(
    sweep: Sweep,
    settings: Settings,
    inputs: dict,
    info: dict,
    trained: TrialRun | None,
    bundle: BundleDir | None = None,
):
    """search.sweep.retrain.retrain of one configuration on the sweep's seeds, data and CPUs."""
    data = sweep.data
    return retrain(
        settings,
        inputs,
        info,
        data.num_classes,
        sweep.seeds,
        sweep.cpus,
        data.test.clean_texts,
        bundle,
        trained,
    )


def _retrain_default(
    sweep: Sweep, records, best: TrialRecord, tuned: Retrain, kept: dict, trained: TrialRun | None
) -> Retrain | Skipped:
    """The model's default configuration (the sweep's first trial) on the same seeds and test texts; when it
    cannot be (it failed in the search, or in its retrain), why not."""
    name, settings, data = sweep.name, sweep.settings, sweep.data
    defaults = settings.point()
    if best.params == defaults:
        print(f"[{name}] the best configuration is the default one: its retrain serves both", flush=True)
        result, predictions = tuned, kept
    else:
        failed = next((r for r in records if r.params == defaults and r.state == TrialState.FAILED), None)
        if failed is not None:
            return Skipped(f"the default configuration failed in the search: {failed.reason}")
        print(f"[{name}] retraining the default configuration, to say what the search bought", flush=True)
        inputs, info = model_inputs(settings, data, ("train", "val", "test"), sweep.options.cache_dir)
        try:
            result, predictions = _retrain_on_seeds(sweep, settings, inputs, info, trained)
        except UserError as err:
            print(f"[{name}] the default configuration could not be retrained: {err}", flush=True)
            return Skipped(str(err))
    for split, p in predictions.items():
        sweep.folder.write_predictions("default", split, p)
    return result


def _states(found) -> dict:
    if found is None:
        return {}
    states = [t.state.name for t in found.trials]
    return {s: states.count(s) for s in sorted(set(states))}


def print_data_report(data: PreparedData) -> None:
    print(format_report(data.report), flush=True)
