"""How many trials before importance means anything: the bootstrap fANOVA of search/analysis/importance.py on
synthetic studies shaped like the LSTM's space (11 knobs: floats, log-scaled floats, choices), where one knob
alone sets the loss and the rest is noise of the size that seeds give a validation loss. For each number of
scored trials: how often the knob that matters is detected, and how often a knob that does not is called
detected. MIN_TRIALS is the smallest number at which the first is at least 80% and the second at most 10%."""

import numpy as np
from optuna.distributions import CategoricalDistribution, FloatDistribution

from search.analysis.importance import DUMMY, MIN_TRIALS, bootstrap_importance
from search.benchmarks.common import Context, table

SPACE = {
    "model.dropout": FloatDistribution(0.0, 0.6),
    "train.lr": FloatDistribution(3e-4, 1e-2, log=True),
    "train.weight_decay": FloatDistribution(1e-6, 1e-2, log=True),
    "model.embed_dim": CategoricalDistribution([32, 64, 128]),
    "model.hidden_dim": CategoricalDistribution([32, 64, 128]),
    "model.num_layers": CategoricalDistribution([1, 2]),
    "model.bidirectional": CategoricalDistribution([False, True]),
    "model.pooling": CategoricalDistribution(["last", "mean", "max"]),
    "model.freeze_embeddings": CategoricalDistribution([False, True]),
    "data.max_len": CategoricalDistribution([64, 128, 256]),
    "train.batch_size": CategoricalDistribution([16, 32, 64]),
}
SIGNAL = "model.dropout"
NOISE = 0.005  # the spread of one configuration's best val loss over training seeds (RT-2k LSTM: 0.004-0.008)


def sample(rng, dist):
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[rng.integers(len(dist.choices))]
    if dist.log:
        return float(np.exp(rng.uniform(np.log(dist.low), np.log(dist.high))))
    return float(rng.uniform(dist.low, dist.high))


def synthetic(n: int, seed: int) -> list:
    """n trials of (params, distributions, value): the loss rises 0.04 from dropout's best (0.2) to its
    worst."""
    rng = np.random.default_rng(seed)
    trials = []
    for _ in range(n):
        params = {k: sample(rng, d) for k, d in SPACE.items()}
        loss = 0.5 + 0.25 * (params[SIGNAL] - 0.2) ** 2 + NOISE * rng.standard_normal()
        trials.append((params, dict(SPACE), float(loss)))
    return trials


def effects(trials: list) -> dict[str, str]:
    """{knob: "detected" | "no detectable effect"} by the report's method, without its minimum (measured
    here)."""
    found = bootstrap_importance(trials, list(SPACE))
    dummy = found.pop(DUMMY)
    return {k: "detected" if v["low"] > dummy["high"] else "no detectable effect" for k, v in found.items()}


def detection(sizes: tuple, repeats: int) -> list[list]:
    rows = []
    for n in sizes:
        hits, false = 0, 0
        for r in range(repeats):
            found = effects(synthetic(n, 1000 * n + r))
            hits += found[SIGNAL] == "detected"
            false += sum(e == "detected" for k, e in found.items() if k != SIGNAL)
        rows.append([n, repeats, f"{hits / repeats:.0%}", f"{false / (repeats * (len(SPACE) - 1)):.1%}"])
    return rows


def importance_trials(ctx: Context) -> str:
    sizes, repeats = ((5, 10), 2) if ctx.plan.quick else ((5, 8, 10, 12, 15, 20), 10)
    return table(
        "9. Importance: how many trials",
        f"Synthetic studies of the LSTM's 11 knobs where only {SIGNAL} sets the loss (a rise of 0.04 over "
        f"its "
        f"range, noise {NOISE} sd); importance over {repeats} studies per size: how often that knob is "
        f"detected "
        "(its 80% interval above the dummy's), and how often another knob is. The report shows importance "
        "from "
        f"{MIN_TRIALS} scored trials on.",
        ["scored trials", "studies", "the knob that matters detected", "a knob that does not, detected"],
        detection(sizes, repeats),
    )
