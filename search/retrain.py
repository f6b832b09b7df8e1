"""Retrain the best configuration once per seed and evaluate on test: the only code that reads test."""

import dataclasses
import statistics
import time
from pathlib import Path

from safetensors.torch import save_file

from configs.errors import UserError
from models import build_model, count_params, entry
from search.engine import evaluate, fit, predict, seed_everything
from search.memory import MemoryBudgetExceeded, MemoryWatch, release_memory
from search.settings import Settings, apply_params, parse_bytes

METRICS = ("accuracy", "precision", "recall", "f1")


def weights_file(seed: int) -> str:
    return f"weights-seed{seed}.safetensors"


def inference_rate(model, data: dict, batch_size: int = 256, repeats: int = 3) -> float:
    """Samples per second of batched prediction (median of repeats)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(model, data, batch_size)
        times.append(time.perf_counter() - start)
    return len(data["labels"]) / statistics.median(times)


def text_inference_rate(
    settings: Settings, model, num_classes: int, texts: list[str], tensors: dict
) -> float:
    """Samples per second from text where the model's own inputs are costly to make from text (a head on
    cached encoder features: the encoder runs too); else from its own tensors."""
    text_model = entry(settings.model_name).text_model
    if text_model is None:
        return inference_rate(model, tensors)
    full, tokens = text_model(model, settings.model, num_classes, texts)
    return inference_rate(full, tokens, batch_size=128, repeats=1)


def retrain(
    best: Settings,
    inputs: dict,
    info: dict,
    num_classes: int,
    seeds: list[int],
    cpus: int,
    out_dir: Path,
    test_texts: list[str],
) -> dict:
    """best: the chosen configuration; inputs: its train, val and test tensors; test_texts: the test texts as
    the model would receive them, to time inference from text; out_dir: where each seed's weights go. Each
    seed trains under the sweep's memory budget, as the trials did (here in the driver, whose RSS includes the
    data it holds)."""
    budget = parse_bytes(best.search.memory_budget)
    runs = []
    for seed in seeds:
        cfg = apply_params(best, {"train.seed": seed, "train.threads": cpus})
        seed_everything(seed)
        release_memory()
        with MemoryWatch(budget, hard_limit=False) as watch:
            try:
                model = build_model(cfg.model_name, cfg.model, num_classes, info)
                result = fit(model, inputs["train"], inputs["val"], cfg.train, on_batch=watch.check)
            except MemoryBudgetExceeded as err:
                raise UserError(
                    f"retraining {cfg.model_name} (seed {seed}): {err}; raise --memory-budget "
                    "(the retrain runs in the driver, which also holds the data)"
                ) from None
        test = evaluate(model, inputs["test"], num_classes, cfg.train.eval_batch_size, cfg.train.bf16)
        # The whole module as trained: for a head on cached encoder outputs that is the head (and any
        # unfrozen top layers); the frozen encoder below is loaded again by name (search/bundle.py).
        out_dir.mkdir(parents=True, exist_ok=True)
        save_file(
            {k: v.detach().contiguous() for k, v in model.state_dict().items()},
            str(out_dir / weights_file(seed)),
        )
        last = result.history[-1]
        params, trainable = count_params(model)
        rate = (
            runs[0]["inference_per_s"]
            if runs and entry(cfg.model_name).text_model
            else text_inference_rate(cfg, model, num_classes, test_texts[:256], inputs["test"])
        )
        runs.append(
            {
                "seed": seed,
                "test": test,
                "epochs": len(result.history),
                "best_epoch": result.best_epoch,
                "best_val_loss": result.best_val_loss,
                "history": [dataclasses.asdict(h) for h in result.history],
                "mean_epoch_s": statistics.mean(h.seconds for h in result.history),
                "inference_per_s": rate,
                "overfitting": last.overfitting,
                "collapse": last.collapse,
                "params": params,
                "trainable_params": trainable,
                "peak_rss_mb": watch.peak_mb,
            }
        )
        print(
            f"  retrain seed {seed}: test accuracy {test['accuracy']:.4f}, F1 {test['f1']:.4f} "
            f"({len(result.history)} epochs)",
            flush=True,
        )
    return summarize(runs)


def summarize(runs: list[dict]) -> dict:
    mean = {m: statistics.mean(r["test"][m] for r in runs) for m in METRICS}
    std = {m: statistics.stdev(r["test"][m] for r in runs) if len(runs) > 1 else 0.0 for m in METRICS}
    return {
        "seeds": runs,
        "mean": mean,
        "std": std,
        "mean_epoch_s": statistics.mean(r["mean_epoch_s"] for r in runs),
        "inference_per_s": statistics.median(r["inference_per_s"] for r in runs),
        "params": runs[0]["params"],
        "trainable_params": runs[0]["trainable_params"],
        "overfitting": any(r["overfitting"] for r in runs),
        "collapse": any(r["collapse"] for r in runs),
    }
