"""The inputs a sweep hands its trials: for every value of the knobs that change a model's inputs (the
registry entry's `input_keys`), that model's inputs for train and val, made once before the search."""

import itertools

from data_pipeline.prepare import PreparedData
from models import entry
from search.settings import apply_params


def variant(settings) -> tuple:
    """Which inputs a configuration reads: the values of its model's input-changing knobs."""
    return tuple(settings.get(key) for key in entry(settings.model_name).input_keys)


def sweep_inputs(settings, data: PreparedData, cache_dir: str | None = None) -> tuple[dict, dict]:
    """({variant: {split: tensors}}, {variant: info}) for train and val, for every input-changing value the
    space can choose, so each trial reads inputs that match its own configuration. No test split."""
    keys = [k for k in entry(settings.model_name).input_keys if k in settings.space]
    inputs, infos = {}, {}
    for values in itertools.product(*(settings.space[k].values for k in keys)):
        cfg = apply_params(settings, dict(zip(keys, values)))
        key = variant(cfg)
        if key not in inputs:
            inputs[key], infos[key] = entry(cfg.model_name).inputs(
                cfg.model, data, ("train", "val"), cache_dir
            )
    return inputs, infos
