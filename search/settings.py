"""Settings for one model: configs/data.yaml + configs/<model>.yaml (or the user's file) + CLI overrides,
loaded into typed dataclasses and validated before any work starts."""
import copy
import dataclasses
import re
from dataclasses import dataclass, field
from importlib import resources
from pathlib import Path

import yaml

from data_pipeline.config import DataConfig
from models import entry
from search.engine import TrainConfig
from search.errors import UserError
from search.typed import check_range, from_dict

SPACE_KINDS = ("uniform", "loguniform", "choice", "randint")


@dataclass
class SearchConfig:
    trials: int = 20
    seeds: int = 3
    grace_period: int = 2
    reduction_factor: int = 3
    memory_budget: str = "2GB"
    space: dict = field(default_factory=dict)

    def validate(self) -> None:
        check_range(self, "search", trials=(1, None, True), seeds=(1, None, True), grace_period=(1, None, True),
                    reduction_factor=(2, None, True))
        parse_bytes(self.memory_budget)


@dataclass
class Settings:
    model_name: str
    data: DataConfig
    model: object
    train: TrainConfig
    search: SearchConfig

    def section(self, name: str):
        return getattr(self, name)

    def as_dict(self) -> dict:
        return {name: dataclasses.asdict(self.section(name)) for name in ("data", "model", "train", "search")}


def parse_bytes(text: str) -> int:
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([KMGT]?)i?B?\s*", str(text), re.IGNORECASE)
    if not match:
        raise UserError(f"memory budget {text!r} is not a size; write e.g. 800MB or 3GB")
    scale = {"": 1, "K": 2**10, "M": 2**20, "G": 2**30, "T": 2**40}[match.group(2).upper()]
    return int(float(match.group(1)) * scale)


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


def load_settings(model_name: str, overrides: dict | None = None, sets: list[str] = (),
                  config_file: str | None = None) -> Settings:
    """overrides: {"train.max_epochs": 3, ...} from named flags; sets: ["section.key=value", ...] from --set."""
    model_entry = entry(model_name)
    raw = copy.deepcopy(read_yaml(shipped("data")))
    model_yaml = read_yaml(Path(config_file)) if config_file else read_yaml(shipped(model_name))
    unknown = set(model_yaml) - {"data", "model", "train", "search"}
    if unknown:
        raise UserError(f"unknown config section {sorted(unknown)[0]!r}; sections are data, model, train, search")
    for section, values in model_yaml.items():
        raw.setdefault(section, {}).update(values or {})
    for key, value in {**(overrides or {}), **parse_sets(sets)}.items():
        section, _, name = key.partition(".")
        if section not in ("data", "model", "train", "search") or not name:
            raise UserError(f"--set {key}: keys look like data.KEY, model.KEY, train.KEY or search.KEY")
        raw.setdefault(section, {})[name] = value
    settings = Settings(model_name, from_dict(DataConfig, raw.get("data"), "data"),
                        from_dict(model_entry.config, raw.get("model"), "model"),
                        from_dict(TrainConfig, raw.get("train"), "train"),
                        from_dict(SearchConfig, raw.get("search"), "search"))
    validate_space(settings)
    return settings


def parse_sets(sets: list[str]) -> dict:
    out = {}
    for item in sets:
        key, sep, value = item.partition("=")
        if not sep or not key.strip():
            raise UserError(f"--set {item!r} must look like KEY=VALUE, e.g. --set train.lr=0.002")
        out[key.strip()] = yaml.safe_load(value) if value.strip() else None
    return out


def validate_space(settings: Settings) -> None:
    for key, spec in settings.search.space.items():
        section, _, name = key.partition(".")
        if section not in ("model", "train") or name not in {f.name for f in dataclasses.fields(settings.section(section))}:
            raise UserError(f"search.space key {key!r} names no model.* or train.* setting")
        if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in SPACE_KINDS:
            raise UserError(f"search.space.{key} must be one of {{uniform|loguniform|randint: [low, high]}} "
                            f"or {{choice: [values]}}, got {spec!r}")
        kind, args = next(iter(spec.items()))
        if key in ("model.pooling", "model.max_length", "model.unfreeze_layers", "model.encoder") and kind != "choice":
            raise UserError(f"search.space.{key} changes the model's inputs and must be a choice: {{choice: [...]}}")
        if not isinstance(args, list) or not args or (kind != "choice" and len(args) != 2):
            raise UserError(f"search.space.{key}: {kind} takes " + ("a list of values" if kind == "choice" else "[low, high]"))
        if kind != "choice" and not float(args[0]) < float(args[1]):
            raise UserError(f"search.space.{key}: low must be below high, got {args}")
        if kind == "loguniform" and float(args[0]) <= 0:
            raise UserError(f"search.space.{key}: loguniform needs low > 0, got {args[0]}")


def apply_params(settings: Settings, params: dict) -> Settings:
    """A copy of settings with {"model.dropout": 0.2, ...} applied and validated."""
    out = copy.deepcopy(settings)
    for key, value in params.items():
        section, _, name = key.partition(".")
        values = dataclasses.asdict(out.section(section)) | {name: value}
        setattr(out, section, from_dict(type(out.section(section)), values, section))
    return out
