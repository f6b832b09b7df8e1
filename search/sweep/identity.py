"""What a sweep is, so that a resume never mixes two searches: a sweep name holds one dataset (dataset.json),
and each model's folder one set of settings (sweep.json). The number of trials is not part of it (a sweep
grows), and neither is a time budget (it belongs to one command), nor how the sweep runs (RUNS: the memory
budget, trials at once, the retrain's seeds, threads), which a resume may change from then on."""

import dataclasses
import hashlib
import json

from configs.errors import UserError
from data_pipeline.sources import fingerprint
from search.core.provenance import provenance
from search.store import study
from search.store.layout import ModelDir, RunDir
from search.sweep.storage import remove

GROWS = {"search.trials"}  # a resume may ask for more trials: the same search goes on
# How a sweep runs, not what it searches: a resume may change these, and the change applies from then on.
RUNS = {
    "search.memory_budget": "the trials still to run and the retrain",
    "search.concurrent": "the trials still to run",
    "search.seeds": "the retrain: the best configuration (and the default) is retrained on the new seeds",
    "train.threads": "the trials still to run and the retrain",
    "search.replay_epoch_s": "the replayed trials still to run",
}


def check_dataset(run: RunDir, settings, fresh: bool) -> str:
    """The data settings (max_len aside: each model searches its own) and the source's content; with --fresh
    a sweep of other data is discarded. Returns the data's identity (for the baseline)."""
    data = {k: v for k, v in dataclasses.asdict(settings.data).items() if k != "max_len"}
    wanted = json.loads(json.dumps({"data": data, "source": fingerprint(settings.data)}))
    saved = run.read_dataset()
    if saved is not None:
        changed = [
            f"data.{k} was {saved['data'].get(k)!r}, now {v!r}"
            for k, v in wanted["data"].items()
            if saved["data"].get(k) != v
        ]
        if saved["source"] != wanted["source"]:
            changed.append(f"the source's content changed ({saved['source']} -> {wanted['source']})")
        if changed and not fresh:
            raise UserError(
                f"{run.root} holds sweeps of other data: {'; '.join(changed)}; pass --fresh to discard "
                "them, or --name to start another sweep"
            )
        if changed:
            print(f"--fresh: the data changed ({'; '.join(changed)}); discarding all of {run.root}")
            run.clear()
    return hashlib.sha256(run.write_dataset(wanted)).hexdigest()[:16]


def _comparable(settings) -> dict:
    return json.loads(json.dumps(settings.as_dict()))


def differences(saved: dict, settings) -> list[str]:
    """["search.trials", ...]: the dotted keys whose values differ; a key the saved settings lack is newer
    than the sweep, which ran with its default."""
    wanted, out = _comparable(settings), []
    for section in ("data", "model", "train", "search"):
        default = json.loads(json.dumps(dataclasses.asdict(type(settings.section(section))())))
        for key in sorted(set(wanted[section]) | set(saved[section])):
            if wanted[section].get(key) != saved[section].get(key, default.get(key)):
                out.append(f"{section}.{key}")
    return out


def check_settings(folder: ModelDir, settings, extend_space: bool = False) -> bool:
    """One model folder holds one search: other settings would mix two of them. Returns whether the search
    space changed and --extend-space allows it (search/sweep/extend.py)."""
    saved = folder.read_settings()
    if saved is None:
        return False
    changed = [key for key in differences(saved, settings) if key not in GROWS]
    for key in [k for k in changed if k in RUNS]:
        section, _, name = key.partition(".")
        print(
            f"[{settings.model_name}] {key} was {saved[section].get(name)!r}, now {settings.get(key)!r}: "
            f"this applies to {RUNS[key]}",
            flush=True,
        )
    changed = [key for key in changed if key not in RUNS]
    if changed == ["search.space"]:
        if extend_space:
            return True
        before, now = saved["search"]["space"], settings.search.space
        knobs = sorted(k for k in set(before) | set(now) if before.get(k) != now.get(k))
        raise UserError(
            f"{folder.root} was started with another search space (changed: {', '.join(knobs)}); pass "
            "--extend-space to search the new one (the earlier trials inside it inform the sampler), "
            "--fresh to discard the sweep, or --name to start another"
        )
    for key in changed:
        section, _, name = key.partition(".")
        raise UserError(
            f"{folder.root} was started with {key}={saved[section].get(name)!r}, not "
            f"{settings.get(key)!r}, which changes what it searches; rerun with {key}="
            f"{saved[section].get(name)!r} to resume, or pass --fresh to discard it, or --name to start "
            f"another sweep (these may change on a resume: {', '.join(sorted(RUNS))}, and search.trials)"
        )
    return False


def begin(run: RunDir, settings, fresh: bool, experiment: str) -> None:
    """After every check has passed (a refused command changes nothing): discard the model's old sweep on
    --fresh (its folder, its trials where --storage put them, its study), then record the settings that a
    resume must repeat."""
    folder = run.model(settings.model_name)
    if fresh and folder.exists():
        print(
            f"--fresh: discarding {folder.root} ({len(folder.trial_dirs())} trial folders, checkpoints, "
            "results)"
        )
        folder.remove()
    if fresh:
        remove(experiment)  # where --storage put the trials (gone already when that is the model's folder)
        study.delete_study(run, settings.model_name)
    saved = folder.read_settings()
    if saved is None or differences(saved, settings):
        folder.write_settings(_comparable(settings), provenance())
