"""Settings for one model: the config classes' defaults, then configs/data.yaml and configs/<model>.yaml (or
the user's file), then CLI overrides; loaded into typed dataclasses and validated before any work starts.

Each default is written once, in its dataclass (DataConfig, the model's config, TrainConfig, SearchConfig).
The YAML files hold only what differs from those defaults, and the search space.
"""

import copy
import dataclasses
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path
from typing import Literal, Optional

import yaml

from configs.errors import UserError
from configs.typed import check_range, from_dict
from data_pipeline.config import DataConfig
from models import entry
from search.core.space import Rule, parse_space
from search.engine import TrainConfig

SECTIONS = ("data", "model", "train", "search")
# Data knobs a trial may set: the sweep prepares the data once at the longest max_len and cuts it per trial.
DATA_INPUT_KEYS = ("data.max_len",)


@dataclass
class SearchConfig:
    trials: int = 20
    seeds: int = 3  # the final retrain of the best configuration
    seed: int = 42  # the sampler's seed; train.seed seeds the training
    sampler: Literal["tpe", "random", "qmc"] = "tpe"  # qmc: a scrambled Halton sequence
    startup_trials: int = 10  # TPE: random trials before it models the results (Optuna's default)
    scheduler: Literal["asha", "fifo"] = "asha"  # fifo: no trial is stopped early by the search
    grace_period: int = 2  # ASHA: epochs before a trial can be stopped
    reduction_factor: int = 3
    memory_budget: str = "2GB"  # per trial, enforced
    concurrent: int = 1  # trials at once; more than 1 pays off on a cluster or a many-core machine
    # where Ray keeps trial results and checkpoints: None for the runs directory, else a directory that
    # every node mounts or a URI (s3://, gs://); see search/storage.py
    storage: Optional[str] = None
    # a rehearsal: trials replay this curve bank's recorded curves (a shipped bank's name, e.g. tiny-lstm,
    # or a file) instead of training; the retrains still train (search/sweep/replay.py)
    replay: Optional[str] = None
    replay_epoch_s: float = 0.0  # wall seconds each replayed epoch lasts (a rehearsal of kills or budgets)
    space: dict = field(default_factory=dict)  # {dotted key: {kind: args}}, as written in YAML

    def validate(self) -> None:
        check_range(
            self,
            "search",
            trials=(1, None, True),
            seeds=(1, None, True),
            startup_trials=(0, None, True),
            grace_period=(1, None, True),
            reduction_factor=(2, None, True),
            concurrent=(1, None, True),
            replay_epoch_s=(0, None, True),
        )
        self._budget_bytes = parse_bytes(self.memory_budget)  # parsed here only, where settings are built

    @property
    def budget_bytes(self) -> int:
        """memory_budget in bytes."""
        if getattr(self, "_budget_bytes", None) is None:  # a SearchConfig made without validation
            self._budget_bytes = parse_bytes(self.memory_budget)
        return self._budget_bytes


@dataclass
class Settings:
    model_name: str
    data: DataConfig
    model: object
    train: TrainConfig
    search: SearchConfig
    space: dict[str, Rule] = field(default_factory=dict)  # search.space, parsed

    def section(self, name: str):
        return getattr(self, name)

    def get(self, key: str):
        section, _, name = key.partition(".")
        return getattr(self.section(section), name)

    def point(self) -> dict:
        """This configuration's value of each searched knob: {"model.dropout": 0.3, ...}."""
        return {key: self.get(key) for key in self.space}

    def knobs(self) -> set[str]:
        """Every dotted key the search may set."""
        fields = {f"{s}.{f.name}" for s in ("model", "train") for f in dataclasses.fields(self.section(s))}
        return fields | set(DATA_INPUT_KEYS)

    def input_keys(self) -> tuple[str, ...]:
        """The knobs that change what a model reads: each value the space holds gets its own inputs."""
        return DATA_INPUT_KEYS + entry(self.model_name).input_keys

    def as_dict(self) -> dict:
        return {name: dataclasses.asdict(self.section(name)) for name in SECTIONS}


def parse_bytes(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", str(text), re.IGNORECASE)
    if not match:
        raise UserError(f"memory budget {text!r} is not a size; write e.g. 800MB or 3GB")
    scale = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[match.group(2).upper()]
    return int(float(match.group(1)) * scale)


def parse_duration(text: str) -> float:
    """Seconds from 90s, 15m, 1h, 1h30m or a bare number of seconds."""
    parts = re.fullmatch(
        r"\s*(?:(\d+(?:\.\d+)?)h)?\s*(?:(\d+(?:\.\d+)?)m)?\s*(?:(\d+(?:\.\d+)?)s?)?\s*", str(text)
    )
    if not parts or not any(parts.groups()):
        raise UserError(f"time budget {text!r} is not a duration; write e.g. 90s, 15m or 1h")
    hours, minutes, seconds = (float(g) if g else 0.0 for g in parts.groups())
    total = 3600 * hours + 60 * minutes + seconds
    if total <= 0:
        raise UserError(f"time budget {text!r} must be longer than zero")
    return total


def read_yaml(path_or_resource) -> dict:
    try:
        text = path_or_resource.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as err:
        raise UserError(f"cannot read config {path_or_resource}: {err}") from None
    try:
        loaded = yaml.safe_load(text) or {}
    except yaml.YAMLError as err:
        raise UserError(f"config {path_or_resource} is not valid YAML: {str(err).splitlines()[0]}") from None
    if not isinstance(loaded, dict):
        raise UserError(f"config {path_or_resource} must be a mapping of sections (model, train, search)")
    return loaded


def shipped(name: str):
    return resources.files("configs") / f"{name}.yaml"


def load_settings(
    model_name: str, overrides: dict | None = None, sets: list[str] = (), config_file: str | None = None
) -> Settings:
    """overrides: {"train.max_epochs": 3, ...} from named flags; sets: ["section.key=value", ...], --set."""
    model_entry = entry(model_name)
    raw = copy.deepcopy(read_yaml(shipped("data")))
    if config_file:
        model_yaml = read_yaml(Path(config_file))
    elif shipped(model_name).is_file():
        model_yaml = read_yaml(shipped(model_name))
    else:
        raise UserError(f"model {model_name!r} has no configs/{model_name}.yaml; pass --config FILE")
    unknown = set(model_yaml) - set(SECTIONS)
    if unknown:
        raise UserError(
            f"unknown config section {sorted(unknown)[0]!r}; sections are data, model, train, search"
        )
    for section, values in model_yaml.items():
        raw.setdefault(section, {}).update(values or {})
    for key, value in {**(overrides or {}), **parse_sets(sets)}.items():
        section, _, name = key.partition(".")
        if section not in SECTIONS or not name:
            raise UserError(f"--set {key}: keys look like data.KEY, model.KEY, train.KEY or search.KEY")
        raw.setdefault(section, {})[name] = value
    settings = Settings(
        model_name,
        from_dict(DataConfig, raw.get("data"), "data"),
        from_dict(model_entry.config, raw.get("model"), "model"),
        from_dict(TrainConfig, raw.get("train"), "train"),
        from_dict(SearchConfig, raw.get("search"), "search"),
    )
    settings.space = parse_space(settings.search.space, settings.knobs(), settings.input_keys())
    return settings


def parse_sets(sets: list[str]) -> dict:
    out = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r} must look like KEY=VALUE, e.g. --set train.lr=0.002")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return out


def apply_params(settings: Settings, params: dict) -> Settings:
    """A copy of settings with {"model.dropout": 0.2, ...} applied and validated."""
    out = copy.deepcopy(settings)
    for section in {key.partition(".")[0] for key in params}:
        values = dataclasses.asdict(out.section(section))
        values |= {key.partition(".")[2]: v for key, v in params.items() if key.partition(".")[0] == section}
        setattr(out, section, from_dict(type(out.section(section)), values, section))
    return out
