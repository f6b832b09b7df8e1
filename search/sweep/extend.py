"""--extend-space: a model's search continues in a changed space.

The earlier search is kept beside the new one: its files move to <model>/previous/space-<k>/ (and its study in
optuna.db takes the name <model>@space-<k>), and the new study's sampler is told the earlier trials that lie
inside the new space, a knob they lacked taking the value it then had. They inform the sampler only: the new
search runs its own trials, which alone count, are chosen from and enter importance.
"""

from search.store import study
from search.store.layout import ModelDir, RunDir
from search.sweep.storage import filesystem, is_uri

PREVIOUS = "previous"


def set_aside(run: RunDir, folder: ModelDir, experiment: str) -> ModelDir:
    """Move the earlier search out of the model's folder (and out of the storage, when that is elsewhere);
    returns its new folder."""
    earlier = folder.root / PREVIOUS
    k = 1 + len(list(earlier.glob("space-*"))) if earlier.is_dir() else 1
    target = earlier / f"space-{k}"
    target.mkdir(parents=True)
    for entry in folder.root.iterdir():
        if entry.name != PREVIOUS:
            entry.rename(target / entry.name)
    if is_uri(experiment) or experiment.rstrip("/") != str(folder.root.resolve()):
        fs, path = filesystem(experiment)
        fs.move(path, f"{path}-space-{k}")
    study.rename_study(run, folder.name, f"{folder.name}@space-{k}")
    print(f"[{folder.name}] --extend-space: the earlier search is kept in {target}", flush=True)
    return ModelDir(target)
