"""The search space, parsed once from YAML into typed rules. A knob keeps its dotted name (`model.dropout`)
from YAML through Ray Tune and Optuna to the trial: Ray's OptunaSearch only splits names on "/", so dotted
names pass through it unchanged, and Optuna records them as they are."""

import math
from dataclasses import dataclass
from typing import Any

from configs.errors import UserError

KINDS = ("uniform", "loguniform", "randint", "choice")


@dataclass(frozen=True)
class Rule:
    kind: str  # one of KINDS
    values: tuple  # choice: the values; otherwise (low, high), both inclusive for randint

    def contains(self, value: Any) -> bool:
        if self.kind == "choice":
            return value in self.values
        return self.values[0] <= value <= self.values[1]

    def domain(self):
        """Ray Tune's sampler for this rule."""
        from ray import tune

        low, high = self.values[0], self.values[-1]
        if self.kind == "choice":
            return tune.choice(list(self.values))
        if self.kind == "randint":
            return tune.randint(low, high + 1)  # Tune's upper bound is exclusive
        return (tune.loguniform if self.kind == "loguniform" else tune.uniform)(low, high)

    def suggest(self, trial, name: str):
        """The same rule asked of a plain Optuna trial (define-by-run)."""
        if self.kind == "choice":
            return trial.suggest_categorical(name, list(self.values))
        if self.kind == "randint":
            return trial.suggest_int(name, *self.values)
        return trial.suggest_float(name, *self.values, log=self.kind == "loguniform")


def parse_rule(key: str, spec) -> Rule:
    shape = "{uniform|loguniform|randint: [low, high]} or {choice: [values]}"
    if not isinstance(spec, dict) or len(spec) != 1 or next(iter(spec)) not in KINDS:
        raise UserError(f"search.space.{key} must be one of {shape}, got {spec!r}")
    kind, args = next(iter(spec.items()))
    if not isinstance(args, list) or not args or (kind != "choice" and len(args) != 2):
        raise UserError(
            f"search.space.{key}: {kind} takes " + ("a list of values" if kind == "choice" else "[low, high]")
        )
    if kind == "choice":
        return Rule(kind, tuple(args))
    try:
        cast = int if kind == "randint" else float
        low, high = (cast(a) for a in args)
    except (TypeError, ValueError):
        raise UserError(f"search.space.{key}: {kind} bounds must be numbers, got {args}") from None
    if not low < high or not (math.isfinite(low) and math.isfinite(high)):
        raise UserError(f"search.space.{key}: low must be below high, got {args}")
    if kind == "loguniform" and low <= 0:
        raise UserError(f"search.space.{key}: loguniform needs low > 0, got {args[0]}")
    return Rule(kind, (low, high))


def parse_space(spec: dict, knobs: set[str], input_keys: tuple[str, ...]) -> dict[str, Rule]:
    """{dotted key: Rule}. knobs: every settable dotted key; input_keys: those that change a model's inputs,
    which must be choices (each value gets its own inputs, prepared before the search)."""
    rules = {}
    for key, value in spec.items():
        if key not in knobs:
            raise UserError(
                f"search.space key {key!r} names no model.* or train.* setting (nor data.max_len)"
            )
        rules[key] = parse_rule(key, value)
        if key in input_keys and rules[key].kind != "choice":
            raise UserError(
                f"search.space.{key} changes the model's inputs and must be a choice: {{choice: [...]}}"
            )
    return rules


def seed_point(rules: dict[str, Rule], values: dict[str, Any]) -> dict | None:
    """The configured values as a point of the space (the first trial), or None when one lies outside it."""
    point = {key: values[key] for key in rules}
    return point if all(rules[k].contains(v) for k, v in point.items()) else None
