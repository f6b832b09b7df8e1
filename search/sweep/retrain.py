"""Retrain a configuration once per seed, evaluate on test and keep every prediction: the only code that reads
test. The tuned configuration's weights go into the bundle; the default configuration is retrained the same
way to say what the search bought."""

import dataclasses
import statistics
import time
from dataclasses import dataclass

import numpy as np
from safetensors.torch import save_file

from configs.errors import UserError
from models import build_model, count_params, entry
from models.batching import UNBATCHED
from search.core.settings import Settings, apply_params
from search.engine import EpochStats, FitResult, fit, metrics, predict, seed_everything
from search.engine.memory import MemoryBudgetExceeded, MemoryWatch, release_memory
from search.store import files
from search.store.layout import BundleDir, Predictions
from search.store.records import Epoch, Retrain, SeedRun


def inference_rate(model, data: dict, batch_size: int = 256, repeats: int = 3, batching=UNBATCHED) -> float:
    """Samples per second of batched prediction (median of repeats)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(model, data, batch_size, batching=batching)
        times.append(time.perf_counter() - start)
    return len(data["labels"]) / statistics.median(times)


def text_inference_rate(
    settings: Settings, model, num_classes: int, texts: list[str], tensors: dict
) -> float:
    """Samples per second from text where the model's own inputs are costly to make from text (a head on
    cached encoder features: the encoder runs too); else from its own tensors."""
    model_entry = entry(settings.model_name)
    if model_entry.text_model is None:
        return inference_rate(model, tensors, batching=model_entry.batching)
    full, tokens = model_entry.text_model(model, settings.model, num_classes, texts)
    return inference_rate(full, tokens, batch_size=128, repeats=1, batching=model_entry.batching)


@dataclass(frozen=True)
class TrialRun:
    """A search trial that trained the configuration being retrained, to its own end, on one of the retrain's
    seeds: the same code, data, configuration and seed, so retraining that seed would repeat it exactly (its
    weights and history are used instead). `state` is the trial's last checkpoint (search.engine.fit's
    snapshot)."""

    trial_id: str
    seed: int
    state: dict
    peak_rss_mb: float | None

    def model(self, cfg: Settings, num_classes: int, info: dict):
        """(the trained model, its fit result): the model built as the trial built it, with the weights its
        training ended with (fit's best epoch)."""
        seed_everything(self.seed)
        model = build_model(cfg.model_name, cfg.model, num_classes, info)
        model.load_state_dict(self.state["best_state"], strict=False)
        history = [EpochStats(**h) for h in self.state["history"]]
        stopped = len(history) < cfg.train.max_epochs
        return model, FitResult(history, self.state["best_epoch"], self.state["best_val_loss"], stopped)


def _train_one(cfg: Settings, inputs: dict, info: dict, num_classes: int, seed: int):
    """(model, fit result, peak RSS in MB) of one seed, under the sweep's memory budget (in the driver, whose
    RSS includes the data it holds)."""
    seed_everything(seed)
    release_memory()
    with MemoryWatch(cfg.search.budget_bytes, hard_limit=False) as watch:
        try:
            model = build_model(cfg.model_name, cfg.model, num_classes, info)
            result = fit(
                model,
                inputs["train"],
                inputs["val"],
                cfg.train,
                on_batch=watch.check,
                batching=entry(cfg.model_name).batching,
            )
        except MemoryBudgetExceeded as err:
            raise UserError(
                f"retraining {cfg.model_name} (seed {seed}): {err}; run the same command again with a "
                "larger --memory-budget: the finished trials are kept and the retrain runs with it (in the "
                "driver, which also holds the data)"
            ) from None
    return model, result, watch.peak_mb


def _probabilities(model, data: dict, cfg: Settings) -> np.ndarray:
    logits = predict(model, data, cfg.train.eval_batch_size, cfg.train.bf16, entry(cfg.model_name).batching)
    return logits.softmax(1).numpy()


def save_weights(bundle: BundleDir, seed: int, model) -> None:
    """The whole module as trained: for a head on cached encoder outputs that is the head (and any unfrozen
    top layers); the frozen encoder below is loaded again by name (search/sweep/bundle.py)."""
    tensors = {k: v.detach().contiguous() for k, v in model.state_dict().items()}
    files.write_with(bundle.weights(seed), lambda tmp: save_file(tensors, str(tmp)))


def retrain(
    config: Settings,
    inputs: dict,
    info: dict,
    num_classes: int,
    seeds: list[int],
    cpus: int,
    test_texts: list[str],
    bundle: BundleDir | None = None,
    trained: TrialRun | None = None,
) -> tuple[Retrain, dict[str, Predictions]]:
    """config: the configuration; inputs: its train, val and test tensors; test_texts: the test texts as the
    model would receive them, to time inference from text; bundle: where each seed's weights go (none for the
    default configuration); trained: the search's trial of this configuration on one of the seeds, which
    that seed takes instead of training again. Returns (the retrain over seeds, {"val"|"test": each seed's
    class probabilities})."""
    runs, probs = [], {"val": [], "test": []}
    for seed in seeds:
        cfg = apply_params(config, {"train.seed": seed, "train.threads": cpus})
        if trained is not None and trained.seed == seed:
            model, result = trained.model(cfg, num_classes, info)
            peak_mb, source = trained.peak_rss_mb, f", trained by the search's trial {trained.trial_id}"
        else:
            (model, result, peak_mb), source = _train_one(cfg, inputs, info, num_classes, seed), ""
        for split in probs:
            probs[split].append(_probabilities(model, inputs[split], cfg))
        labels = inputs["test"]["labels"].numpy()
        test = metrics(labels, probs["test"][-1].argmax(1), num_classes)
        if bundle is not None:
            save_weights(bundle, seed, model)
        last = result.history[-1]
        params, trainable = count_params(model)
        rate = (
            runs[0].inference_per_s
            if runs and entry(cfg.model_name).text_model
            else text_inference_rate(cfg, model, num_classes, test_texts[:256], inputs["test"])
        )
        runs.append(
            SeedRun(
                seed=seed,
                test=test,
                epochs=len(result.history),
                best_epoch=result.best_epoch,
                best_val_loss=result.best_val_loss,
                history=[Epoch(**dataclasses.asdict(h)) for h in result.history],
                mean_epoch_s=statistics.mean(h.seconds for h in result.history),
                inference_per_s=rate,
                overfitting=last.overfitting,
                collapse=last.collapse,
                params=params,
                trainable_params=trainable,
                peak_rss_mb=peak_mb,
            )
        )
        print(
            f"  retrain seed {seed}: test accuracy {test['accuracy']:.4f}, F1 {test['f1']:.4f} "
            f"({len(result.history)} epochs{source})",
            flush=True,
        )
    kept = {
        split: Predictions(np.stack(p), inputs[split]["labels"].numpy(), list(seeds))
        for split, p in probs.items()
    }
    return Retrain.of(runs), kept
