"""How many trials before importance means anything, and how often it speaks under a null: the report's
importance (search/analysis/importance.py: fANOVA refitted with fresh dummies) and sweet-spot flags
(search/analysis/knobs.py) on synthetic studies shaped like the LSTM's space (11 knobs: floats, log-scaled
floats, choices), with the noise of real training: the seed-to-seed spread of a configuration's best
validation loss, measured on the rt-lstm curve bank. Null studies: no knob matters. Signal studies: one knob
alone sets the loss. For each number of scored trials: how often the knob that matters is detected (power),
and how often a knob that does not is called detected or flagged (at most 5% is the bar). MIN_TRIALS is where
the report starts showing importance: the smallest size measured whose false detections stay under the bar;
power is reported beside it, so that "no detectable effect" is read for what it is at that size."""

import time

import numpy as np
import optuna
from optuna.distributions import CategoricalDistribution, FloatDistribution
from optuna.trial import TrialState, create_trial

from search.analysis.importance import DETECT, MIN_TRIALS, REFITS
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
RISE = 0.04  # the signal: the loss rises this much from dropout's best (0.2) to the far end of its range


def bank_noise() -> float:
    """One seed's standard deviation of a configuration's best validation loss, from the rt-lstm bank's
    configurations recorded on two seeds."""
    from search.sweep.replay import load_bank, shipped_bank

    bank = load_bank(shipped_bank("rt-lstm"))
    pairs = [sorted(r, key=lambda x: x.seed)[:2] for r in bank.configs().values() if len(r) > 1]
    diffs = [min(a.column("val_loss")) - min(b.column("val_loss")) for a, b in pairs]
    return float(np.std(diffs, ddof=1) / np.sqrt(2))


def sample(rng, dist):
    if isinstance(dist, CategoricalDistribution):
        return dist.choices[rng.integers(len(dist.choices))]
    if dist.log:
        return float(np.exp(rng.uniform(np.log(dist.low), np.log(dist.high))))
    return float(rng.uniform(dist.low, dist.high))


def synthetic(n: int, seed: int, noise: float, signal: bool = True) -> list:
    """n trials of (params, distributions, value): with signal, the loss rises RISE from dropout's best
    (0.2) to its worst; without, no knob matters."""
    rng = np.random.default_rng(seed)
    trials = []
    for _ in range(n):
        params = {k: sample(rng, d) for k, d in SPACE.items()}
        rise = RISE * ((params[SIGNAL] - 0.2) / 0.4) ** 2 if signal else 0.0
        loss = 0.5 + rise + noise * rng.standard_normal()
        trials.append((params, dict(SPACE), float(loss)))
    return trials


def judged(trials: list, refits: int = REFITS) -> dict[str, dict]:
    """{knob: the report's row (effect, edge, broad)} for these trials, as the report judges them."""
    from search.analysis.knobs import knob_rows

    study = optuna.create_study()
    study.add_trials(
        [
            create_trial(
                state=TrialState.COMPLETE, value=v, params=p, distributions=d, user_attrs={"best_val_loss": v}
            )
            for p, d, v in trials
        ]
    )
    rows, _ = knob_rows(study, trials[0][0], refits)
    return {r["knob"]: r for r in rows}


def rates(sizes: tuple, repeats: int, noise: float, refits: int = REFITS) -> list[list]:
    rows = []
    others = len(SPACE) - 1
    for n in sizes:
        hits = false = flagged = null_false = null_flagged = 0
        for r in range(repeats):
            found = judged(synthetic(n, 1000 * n + r, noise), refits)
            hits += found[SIGNAL]["effect"] == "detected"
            false += sum(v["effect"] == "detected" for k, v in found.items() if k != SIGNAL)
            flagged += sum(v["edge"] or v["broad"] for k, v in found.items() if k != SIGNAL)
            null = judged(synthetic(n, 1000 * n + r + 500, noise, signal=False), refits)
            null_false += sum(v["effect"] == "detected" for v in null.values())
            null_flagged += sum(v["edge"] or v["broad"] for v in null.values())
        rows.append(
            [
                n,
                repeats,
                f"{hits / repeats:.0%}",
                f"{false / (repeats * others):.1%}",
                f"{null_false / (repeats * len(SPACE)):.1%}",
                f"{null_flagged / (repeats * len(SPACE)):.1%}",
                f"{flagged / (repeats * others):.1%}",
            ]
        )
    return rows


def importance_trials(ctx: Context) -> str:
    # quick: the code path (a rate from one study of each kind says nothing), so fewer refits too
    sizes, repeats, refits = ((20,), 1, 20) if ctx.plan.quick else ((20, 40, 60), 10, REFITS)
    noise = bank_noise()
    started = time.process_time()
    found = rates(sizes, repeats, noise, refits)
    cost = (time.process_time() - started) / (2 * repeats * len(sizes))
    return table(
        "Importance: how many trials, and null studies",
        f"Synthetic studies of the LSTM's 11 knobs, {repeats} per size and kind, with the noise of real "
        f"training ({noise:.4f}: one seed's sd of a configuration's best val loss on the rt-lstm bank). "
        f"Signal studies: only {SIGNAL} sets the loss (a rise of {RISE} over its range); null studies: no "
        f"knob does. Judged as the report judges ({refits} fANOVA refits with fresh dummies, detected where "
        f"a knob beats the best dummy in {DETECT:.0%} of them; flags only for detected knobs), {cost:.0f} "
        f"CPU s a study on average. The report shows importance from {MIN_TRIALS} scored trials on.",
        [
            "scored trials",
            "studies",
            "the knob that matters detected",
            "another knob detected",
            "null: a knob detected",
            "null: a knob flagged",
            "signal: another knob flagged",
        ],
        found,
    )
