"""Retrain the best configuration once per seed and evaluate on test: the only code that reads the test split."""
import statistics
import time
from pathlib import Path

import torch
from safetensors.torch import save_file

from models import count_params
from search.engine import evaluate, fit, predict, seed_everything, trainable_state
from search.inputs import make_model
from search.settings import Settings, apply_params

METRICS = ("accuracy", "precision", "recall", "f1")


def inference_rate(model, data: dict, batch_size: int = 256, repeats: int = 3) -> float:
    """Samples per second of batched prediction (median of repeats)."""
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        predict(model, data, batch_size)
        times.append(time.perf_counter() - start)
    return len(data["labels"]) / statistics.median(times)


def end_to_end_rate(model, model_cfg, texts: list[str], batch_size: int = 128) -> float:
    """Samples per second from text for a head trained on cached features: the encoder runs too."""
    from data_pipeline.features import tokenize
    from models.encoder import EncoderClassifier, load_encoder

    tokenizer, encoder = load_encoder(model_cfg.encoder)
    full = EncoderClassifier(model_cfg, model.head[-1].out_features, encoder=encoder)
    full.head.load_state_dict(model.head.state_dict())
    data = tokenize(tokenizer, texts, model_cfg.max_length) | {"labels": torch.zeros(len(texts), dtype=torch.int64)}
    return inference_rate(full, data, batch_size, repeats=1)


def retrain(settings: Settings, best_params: dict, inputs: dict, extra: dict, vocab_size: int, num_classes: int,
            seeds: list[int], cpus: int, out_dir: Path, test_texts: list[str] | None = None) -> dict:
    """test_texts: the raw test texts, to time a frozen-encoder model from text rather than from its features."""
    runs = []
    for seed in seeds:
        cfg = apply_params(settings, best_params | {"train.seed": seed, "train.threads": cpus})
        seed_everything(seed)
        model = make_model(cfg.model_name, cfg.model, vocab_size, num_classes, extra)
        result = fit(model, inputs["train"], inputs["val"], cfg.train)
        test = evaluate(model, inputs["test"], num_classes, cfg.train.eval_batch_size)
        save_file({k: v.contiguous() for k, v in trainable_state(model).items()},
                  str(out_dir / f"weights-seed{seed}.safetensors"))
        last = result.history[-1]
        params, trainable = count_params(model)
        if "features" in inputs["test"] and test_texts:
            rate = end_to_end_rate(model, cfg.model, test_texts[:256]) if not runs else runs[0]["inference_per_s"]
        else:
            rate = inference_rate(model, inputs["test"])
        runs.append({"seed": seed, "test": test, "epochs": len(result.history), "best_epoch": result.best_epoch,
                     "mean_epoch_s": statistics.mean(h.seconds for h in result.history),
                     "inference_per_s": rate, "overfitting": last.overfitting,
                     "collapse": last.collapse, "params": params, "trainable_params": trainable})
        print(f"  retrain seed {seed}: test accuracy {test['accuracy']:.4f}, F1 {test['f1']:.4f} "
              f"({len(result.history)} epochs)", flush=True)
    return summarize(runs)


def summarize(runs: list[dict]) -> dict:
    mean = {m: statistics.mean(r["test"][m] for r in runs) for m in METRICS}
    std = {m: statistics.stdev(r["test"][m] for r in runs) if len(runs) > 1 else 0.0 for m in METRICS}
    return {"seeds": runs, "mean": mean, "std": std,
            "mean_epoch_s": statistics.mean(r["mean_epoch_s"] for r in runs),
            "inference_per_s": statistics.median(r["inference_per_s"] for r in runs),
            "params": runs[0]["params"], "trainable_params": runs[0]["trainable_params"],
            "overfitting": any(r["overfitting"] for r in runs), "collapse": any(r["collapse"] for r in runs)}
