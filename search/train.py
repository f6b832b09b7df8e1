"""Train one model with one configuration and print its validation metrics and the data report.

python -m search.train --model lstm [--dataset imdb] [--epochs 5] [--set train.lr=0.002] [--json]
"""

import argparse
import dataclasses
import json
import time

from configs.errors import cli_entry
from data_pipeline.prepare import format_report, prepare
from models import MODELS, build_model, count_params, entry, input_lines, input_report
from search.core.options import add_data_args, add_model_args, settings_from_args
from search.engine import evaluate, fit, seed_everything
from search.sweep.inputs import model_inputs


def parse_args(argv):
    parser = argparse.ArgumentParser(
        prog="python -m search.train",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--model", required=True, choices=list(MODELS), help="architecture")
    add_data_args(parser)
    add_model_args(parser)
    return parser.parse_args(argv)


@cli_entry
def main(argv=None):
    args = parse_args(argv)
    settings = settings_from_args(args.model, args)
    data = prepare(settings.data, args.cache_dir)
    inputs, info = model_inputs(settings, data, ("train", "val"), args.cache_dir)
    data.report |= input_report(info)
    print("\n".join([format_report(data.report), *input_lines(info)]))
    batching = entry(args.model).batching
    seed_everything(settings.train.seed)
    model = build_model(args.model, settings.model, data.num_classes, info)
    params, trainable = count_params(model)
    print(f"{args.model}: {params:,} parameters ({trainable:,} trainable)")

    def show(stats, _snapshot, _last):
        flags = " OVERFITTING" * stats.overfitting + " COLLAPSE" * stats.collapse
        print(
            f"epoch {stats.epoch:2d}  train loss {stats.train_loss:.4f} acc {stats.train_acc:.3f}  "
            f"val loss {stats.val_loss:.4f} acc {stats.val_acc:.3f}  lr {stats.lr:.2e}  "
            f"grad {stats.grad_norm:.2f}  {stats.seconds:.2f}s{flags}",
            flush=True,
        )

    start = time.perf_counter()
    result = fit(model, inputs["train"], inputs["val"], settings.train, on_epoch=show, batching=batching)
    train = settings.train
    val = evaluate(model, inputs["val"], data.num_classes, train.eval_batch_size, train.bf16, batching)
    print(
        f"best epoch {result.best_epoch}: val accuracy {val['accuracy']:.4f}  "
        f"precision {val['precision']:.4f}  "
        f"recall {val['recall']:.4f}  F1 {val['f1']:.4f}  ({time.perf_counter() - start:.1f}s)"
    )
    if args.json:
        last = result.history[-1]
        print(
            json.dumps(
                {
                    "model": args.model,
                    "dataset": data.name,
                    "val_accuracy": val["accuracy"],
                    "val_precision": val["precision"],
                    "val_recall": val["recall"],
                    "val_f1": val["f1"],
                    "val_confusion": val["confusion"],
                    "epochs_run": len(result.history),
                    "best_epoch": result.best_epoch,
                    "epoch_seconds": [h.seconds for h in result.history],
                    "history": [dataclasses.asdict(h) for h in result.history],
                    "params": params,
                    "trainable_params": trainable,
                    "overfitting": last.overfitting,
                    "collapse": last.collapse,
                    "config": settings.as_dict(),
                    "data_report": data.report,
                }
            )
        )


if __name__ == "__main__":
    main()
