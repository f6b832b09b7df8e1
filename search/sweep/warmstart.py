"""--warm-start RUN_DIR: an earlier sweep of the same model informs today's sampler before its first trial.

Its scored trials (completed, or stopped by ASHA: at their best loss) that lie inside today's space are told
to the sampler; a knob the earlier sweep did not search takes the value it then had. They never count toward
the trials asked for, are never chosen as best and never enter importance: they are not trials of this sweep.
"""

from configs.errors import UserError
from search.core.space import parse_rule
from search.store import study
from search.store.layout import ModelDir, RunDir


def told_points(settings, runs: list[RunDir]) -> list[dict]:
    points = []
    for run in runs:
        points += points_from(settings, run.model(settings.model_name), f"--warm-start {run.root}")
    return points


def points_from(settings, folder: ModelDir, what: str) -> list[dict]:
    """The scored trials of an earlier search in `folder` that lie inside today's space, as points to tell."""
    name = settings.model_name
    saved = folder.read_settings()
    rows = folder.read_trial_rows()
    if saved is None or not rows:
        raise UserError(
            f"{what}: it holds no finished {name} sweep (no {folder.TRIALS} in "
            f"{folder.root}); "
            "give the folder of a sweep that ran this model"
        )
    old_space = {k: parse_rule(k, v) for k, v in saved["search"]["space"].items()}
    records = study.records_from_rows(rows, [], old_space)
    points = []
    for record in records:
        if not record.scored:
            continue
        params = {}
        for key, rule in settings.space.items():
            section, _, field = key.partition(".")
            value = record.params[key] if key in record.params else saved[section].get(field)
            if value is None or not rule.contains(value):
                break
            params[key] = value
        else:  # told as COMPLETE at the best loss reached, as the analysis reads stopped trials
            points.append({"params": params, "value": record.best_val_loss, "state": "COMPLETE"})
    return points
