"""One search replayed on a curve bank through the product's own path: search.sweep.tuner.run_search with
Ray Tune, Optuna's sampler and ASHA, and a trainable that reports recorded curves on a simulated clock."""

import tempfile
from dataclasses import dataclass
from pathlib import Path

from configs.errors import UserError
from search.core.settings import Settings, load_settings
from search.store.records import TrialRecord, TrialState
from search.sweep.replay import Bank, SimClock, replay_trainable
from search.sweep.results import choose_best


def bank_settings(bank: Bank, search: dict) -> Settings:
    """The bank's task settings with these search settings ({"search.sampler": "random", ...}); the shipped
    space must still be the one the bank was recorded on."""
    settings = load_settings(bank.meta["model"], bank.meta["overrides"] | search)
    for key in bank.meta.get("fixed", []):
        settings.space.pop(key, None)
    shipped = {key: {rule.kind: list(rule.values)} for key, rule in settings.space.items()}
    if shipped != bank.space:
        differ = sorted(k for k in set(shipped) | set(bank.space) if shipped.get(k) != bank.space.get(k))
        raise UserError(
            f"configs/{bank.meta['model']}.yaml's space differs from the one the bank {bank.meta['task']!r} "
            f"was recorded on ({', '.join(differ)}); record the bank again"
        )
    return settings


@dataclass
class Replayed:
    settings: Settings
    records: list[TrialRecord]  # in the order they ended (one at a time: the order they were proposed)
    clock: SimClock
    ended_by_budget: bool

    @property
    def pick(self) -> TrialRecord | None:
        return choose_best(self.records)

    def curve(self) -> list[tuple[float, float]]:
        """(simulated seconds, best validation accuracy so far) at each trial's end."""
        out, best = [], 0.0
        for end in self.clock.ended:
            if end.best_val_acc is not None:
                best = max(best, end.best_val_acc)
            out.append((end.at, best))
        return out

    def describe(self) -> str:
        s = self.settings.search
        pick = self.pick
        head = (
            f"replayed {len(self.records)} trials ({s.sampler} + {s.scheduler}, search seed {s.seed}); "
            f"simulated time {self.clock.now:.0f} CPU s; epochs {sum(r.epochs for r in self.records)}"
        )
        if self.ended_by_budget:
            head += "; stopped by the time budget"
        if pick is None:
            return head + "; no trial reached a validation loss"
        return head + (
            f"\npick: val loss {pick.best_val_loss:.4f}, val acc {pick.best_val_acc:.4f}, "
            f"{', '.join(f'{k}={v}' for k, v in pick.params.items())}"
        )

    def to_dict(self) -> dict:
        pick = self.pick
        return {
            "trials": len(self.records),
            "epochs": sum(r.epochs for r in self.records),
            "stopped_early": sum(r.state == TrialState.STOPPED_EARLY for r in self.records),
            "sim_s": self.clock.now,
            "curve": self.curve(),
            "pick_val_acc": pick.best_val_acc if pick else None,
            "pick_val_loss": pick.best_val_loss if pick else None,
            "pick_params": pick.params if pick else None,
            "ended_by_budget": self.ended_by_budget,
        }


def replay_sweep(
    bank: Bank,
    search: dict,
    budget_s: float | None = None,
    experiment: str | None = None,
    pause_s: float = 0.0,
    checkpoints: bool = True,
    on_trial=None,
) -> Replayed:
    """Replay one sweep with these search settings; budget_s: simulated CPU seconds for the whole search.
    experiment: where Ray keeps it (default: a temporary folder, removed after)."""
    from search.sweep.cluster import connect
    from search.sweep.tuner import run_search

    settings = bank_settings(bank, search)
    connect(None)
    clock = SimClock(budget_s)
    run = replay_trainable(settings, bank, pause_s, checkpoints)
    with tempfile.TemporaryDirectory() as tmp:
        where = experiment or str(Path(tmp) / "replay")
        gate = clock.gate if budget_s is not None else None
        outcome = run_search(
            settings, run, where, "replay", on_trial, gate=gate, callbacks=[clock.callback()], show=False
        )
    order = {end.trial_id: i for i, end in enumerate(clock.ended)}
    records = sorted(outcome.records, key=lambda r: order.get(r.trial_id, len(order)))
    return Replayed(settings, records, clock, outcome.ended_by_budget)
