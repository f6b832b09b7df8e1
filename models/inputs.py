"""Inputs of the models that read vocabulary ids (RNN, LSTM, Transformer): the prepared data's own tensors."""

from data_pipeline.prepare import PreparedData


def vocab_inputs(
    cfg, data: PreparedData, splits=("train", "val"), cache_dir: str | None = None
) -> tuple[dict, dict]:
    """({split: {"ids", "lengths", "labels"}}, {"vocab_size": ...}); cfg and cache_dir are not needed here."""
    out = {
        s: {
            "ids": getattr(data, s).ids,
            "lengths": getattr(data, s).lengths,
            "labels": getattr(data, s).labels,
        }
        for s in splits
    }
    return out, {"vocab_size": len(data.vocab)}
