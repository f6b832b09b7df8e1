"""The inputs a sweep hands its trials. A command prepares its data once, at the longest max_len any model's
space holds, and cuts it per model and per value. Before the search the driver makes every input variant the
space can choose (the values of data.max_len and of the registry entry's `input_keys`), so that what is costly
(an encoder's pass) is done once and cached on disk; each trial then builds its own variant's inputs from the
prepared train and val splits and that cache (memory-mapped encoder states), so no large array travels
through Ray or sits in the driver. The test split is not among them."""

import dataclasses
import itertools
from dataclasses import dataclass

from configs.errors import UserError
from data_pipeline.config import DataConfig
from data_pipeline.prepare import PreparedData, cache_key, cache_root, prepare
from models import entry
from search.core.settings import apply_params


def sweep_data_config(settings) -> DataConfig:
    """The data settings at the longest max_len a trial may ask for."""
    rule = settings.space.get("data.max_len")
    longest = max([settings.data.max_len, *(rule.values if rule else ())])
    return dataclasses.replace(settings.data, max_len=longest)


def prepare_for_sweep(settings, cache_dir: str | None = None) -> PreparedData:
    return prepare(sweep_data_config(settings), cache_dir)


def check_one_dataset(settings: list) -> None:
    """One sweep name holds one dataset: the models of one command must agree on their data settings but for
    max_len (each model's space searches its own)."""
    shared = [{k: v for k, v in dataclasses.asdict(s.data).items() if k != "max_len"} for s in settings]
    for model, values in zip(settings[1:], shared[1:]):
        differ = [f"data.{k}" for k, v in values.items() if shared[0][k] != v]
        if differ:
            raise UserError(
                f"{model.model_name}'s settings give {', '.join(differ)} other than "
                f"{settings[0].model_name}'s, but the models of one sweep train on one dataset; set the data "
                "section in configs/data.yaml or with --set, not in one model's YAML"
            )


def command_data(settings: list, cache_dir: str | None = None) -> PreparedData:
    """The data of every model a command sweeps (check_one_dataset), prepared once, at the longest max_len any
    of them may ask for; data_for cuts each model's."""
    configs = [sweep_data_config(s) for s in settings]
    return prepare(dataclasses.replace(configs[0], max_len=max(c.max_len for c in configs)), cache_dir)


def data_for(settings, data: PreparedData) -> PreparedData:
    """One model's sweep data, cut from the command's: what preparing it at its own longest max_len gives,
    report and cache key included (an encoder's cached features are found again by a sweep of that model
    alone)."""
    cfg = sweep_data_config(settings)
    return dataclasses.replace(data.cut(cfg.max_len), key=cache_key(cfg))


def variant(settings) -> tuple:
    """Which inputs a configuration reads: the values of its input-changing knobs."""
    return tuple(settings.get(key) for key in settings.input_keys())


def model_inputs(settings, data: PreparedData, splits=("train", "val"), cache_dir: str | None = None):
    """({split: tensors}, info) of one configuration, from data prepared at its max_len or longer."""
    model_entry = entry(settings.model_name)
    return model_entry.inputs(settings.model, data.cut(settings.data.max_len), splits, cache_dir)


@dataclass
class TrialInputs:
    """What every trial of a sweep receives: the prepared data without its test split, and the cache
    folder."""

    data: PreparedData
    cache_dir: str

    def load(self, settings) -> tuple[dict, dict]:
        """({"train", "val"} tensors, info) of the trial's configuration."""
        return model_inputs(settings, self.data, ("train", "val"), self.cache_dir)


def sweep_inputs(settings, data: PreparedData, cache_dir: str | None = None) -> TrialInputs:
    """Make every input variant the space can choose, in the order the model's registry entry asks for, and
    return what the trials need to read them."""
    keys = [k for k in settings.input_keys() if k in settings.space]
    values = itertools.product(*(settings.space[k].values for k in keys))
    configs = [apply_params(settings, dict(zip(keys, v))) for v in values]
    order = entry(settings.model_name).build_order
    if order is not None:
        configs.sort(key=lambda cfg: order(cfg.model))
    made = set()
    for cfg in configs:
        if variant(cfg) not in made:
            model_inputs(cfg, data, ("train", "val"), cache_dir)  # made and cached; the trials read them
            made.add(variant(cfg))
    return TrialInputs(data.without("test"), str(cache_root(cache_dir).resolve()))
