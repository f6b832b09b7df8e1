"""The inputs a sweep hands its trials: for every value of the knobs that change what a model reads
(data.max_len and the registry entry's `input_keys`), that model's inputs for train and val, made once before
the search. The data is prepared once, at the longest max_len the space holds, and cut per value."""

import dataclasses
import itertools

from data_pipeline.config import DataConfig
from data_pipeline.prepare import PreparedData, prepare
from models import entry
from search.core.settings import apply_params


def sweep_data_config(settings) -> DataConfig:
    """The data settings at the longest max_len a trial may ask for."""
    rule = settings.space.get("data.max_len")
    longest = max([settings.data.max_len, *(rule.values if rule else ())])
    return dataclasses.replace(settings.data, max_len=longest)


def prepare_for_sweep(settings, cache_dir: str | None = None) -> PreparedData:
    return prepare(sweep_data_config(settings), cache_dir)


def variant(settings) -> tuple:
    """Which inputs a configuration reads: the values of its input-changing knobs."""
    return tuple(settings.get(key) for key in settings.input_keys())


def model_inputs(settings, data: PreparedData, splits=("train", "val"), cache_dir: str | None = None):
    """({split: tensors}, info) of one configuration, from data prepared at its max_len or longer."""
    model_entry = entry(settings.model_name)
    return model_entry.inputs(settings.model, data.cut(settings.data.max_len), splits, cache_dir)


def sweep_inputs(settings, data: PreparedData, cache_dir: str | None = None) -> dict:
    """{variant: ({split: tensors}, info)} for train and val, for every input-changing value the space can
    choose, so each trial reads inputs that match its own configuration; built in the order the model's
    registry entry asks for. No test split."""
    keys = [k for k in settings.input_keys() if k in settings.space]
    values = itertools.product(*(settings.space[k].values for k in keys))
    configs = [apply_params(settings, dict(zip(keys, v))) for v in values]
    order = entry(settings.model_name).build_order
    if order is not None:
        configs.sort(key=lambda cfg: order(cfg.model))
    inputs = {}
    for cfg in configs:
        key = variant(cfg)
        if key not in inputs:
            inputs[key] = model_inputs(cfg, data, ("train", "val"), cache_dir)
    return inputs
