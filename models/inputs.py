"""Inputs of the models that read vocabulary ids (RNN, LSTM, Transformer): the prepared data's own tensors,
and the pretrained word vectors for that vocabulary when the config asks for them."""

from data_pipeline.prepare import PreparedData
from models.batching import Batching
from models.embeddings import NONE, vectors_for_vocab

REPORT = "report"  # info's key for what the inputs add to the data report; builders never read it
VOCAB_BATCHING = Batching(lengths=lambda data: data["lengths"], padded=("ids",))


def vocab_inputs(cfg, data: PreparedData, splits=("train", "val"), cache_dir: str | None = None):
    """({split: {"ids", "lengths", "labels"}}, info). info: vocab_size, and with model.embeddings set, the
    vectors, which rows have one, and their coverage under REPORT. cache_dir is not needed here."""
    out = {
        s: {
            "ids": getattr(data, s).ids,
            "lengths": getattr(data, s).lengths,
            "labels": getattr(data, s).labels,
        }
        for s in splits
    }
    info = {"vocab_size": len(data.vocab)}
    spec = getattr(cfg, "embeddings", NONE)
    if spec != NONE:
        info["vectors"], info["found"], coverage = vectors_for_vocab(spec, data.vocab)
        info[REPORT] = {"embeddings": coverage}
    return out, info


def vocab_text_inputs(cfg, data: PreparedData) -> dict:
    """The test split's ids for prediction; the pretrained vectors are in the trained weights already."""
    return {"ids": data.test.ids, "lengths": data.test.lengths}
