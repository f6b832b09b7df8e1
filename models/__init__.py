"""Model registry: every architecture is made by name with `build_model`, and its entry owns all that
differs between models: its config class (knobs and defaults), how it is built, what it reads, which knobs
change what it reads, and how it is timed from raw text.

A new architecture is one module here, one `register(...)` line below and one configs/<name>.yaml.
"""

from dataclasses import dataclass
from typing import Callable, Optional

from torch import nn

from configs.errors import UserError
from models.encoder import EncoderClassifier, EncoderConfig
from models.features import encoder_inputs, encoder_text_inputs, encoder_text_model
from models.inputs import vocab_inputs, vocab_text_inputs
from models.recurrent import RecurrentClassifier, RecurrentConfig, RNNConfig
from models.transformer import TransformerClassifier, TransformerConfig


@dataclass(frozen=True)
class Entry:
    config: type  # a dataclass: its fields are the model.* knobs, its defaults the shipped defaults
    build: Callable[..., nn.Module]  # (cfg, num_classes, info) -> module; info comes from `inputs`
    # (cfg, data, splits, cache_dir) -> ({split: {name: tensor, "labels": tensor}}, info)
    inputs: Callable[..., tuple[dict, dict]]
    input_keys: tuple[str, ...] = ()  # model.* knobs that change the inputs: each value needs its own inputs
    # (model, cfg, num_classes, texts) -> (a model that reads the tensors, tensors made from the texts), for
    # timing from text; None: the model's own inputs are already made from text cheaply (vocabulary ids)
    text_model: Optional[Callable[..., tuple[nn.Module, dict]]] = None
    # (cfg, data) -> the test split's input tensors, computed afresh (no disk cache, no training-only extras
    # such as pretrained vectors), for prediction on new text; None: `inputs` for the test split
    text_inputs: Optional[Callable[..., dict]] = None


MODELS: dict[str, Entry] = {}


def register(name: str, entry: Entry) -> None:
    MODELS[name] = entry


def vocab_model(cls, *args):
    """A builder for a model that reads vocabulary ids, with the pretrained vectors its inputs carry."""
    return lambda cfg, k, info: cls(*args, cfg, info["vocab_size"], k, info.get("vectors"), info.get("found"))


VOCAB_KEYS = ("model.embeddings",)
ENCODER_KEYS = (
    "model.encoder",
    "model.max_length",
    "model.truncate",
    "model.pooling",
    "model.unfreeze_layers",
)


def vocab_entry(config, build) -> Entry:
    return Entry(config, build, vocab_inputs, VOCAB_KEYS, text_inputs=vocab_text_inputs)


register("rnn", vocab_entry(RNNConfig, vocab_model(RecurrentClassifier, "rnn")))
register("lstm", vocab_entry(RecurrentConfig, vocab_model(RecurrentClassifier, "lstm")))
register("transformer", vocab_entry(TransformerConfig, vocab_model(TransformerClassifier)))
register(
    "distilbert",
    Entry(
        EncoderConfig,
        lambda cfg, k, info: EncoderClassifier(cfg, k, features_info=info),
        encoder_inputs,
        ENCODER_KEYS,
        encoder_text_model,
        encoder_text_inputs,
    ),
)


def entry(name: str) -> Entry:
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def build_model(name: str, cfg, num_classes: int, info: dict) -> nn.Module:
    """info: what the model's inputs say about themselves (vocabulary size, cached-feature sizes)."""
    return entry(name).build(cfg, num_classes, info)


def count_params(model: nn.Module) -> tuple[int, int]:
    """(total, trainable)."""
    if hasattr(model, "param_counts"):
        return model.param_counts()
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)
