"""Model registry: every architecture is made by name with `build_model`.

A new architecture is one module here, one line in MODELS and one configs/<name>.yaml.
"""
from dataclasses import dataclass
from typing import Callable

from torch import nn

from models.encoder import EncoderClassifier, EncoderConfig
from models.recurrent import RecurrentClassifier, RecurrentConfig, RNNConfig
from models.transformer import TransformerClassifier, TransformerConfig
from search.errors import UserError


@dataclass(frozen=True)
class Entry:
    config: type
    build: Callable[..., nn.Module]
    uses_vocab: bool  # False: the model brings its own tokenizer


MODELS = {
    "rnn": Entry(RNNConfig, lambda cfg, v, k: RecurrentClassifier("rnn", cfg, v, k), True),
    "lstm": Entry(RecurrentConfig, lambda cfg, v, k: RecurrentClassifier("lstm", cfg, v, k), True),
    "transformer": Entry(TransformerConfig, lambda cfg, v, k: TransformerClassifier(cfg, v, k), True),
    "distilbert": Entry(EncoderConfig, lambda cfg, v, k, **kw: EncoderClassifier(cfg, k, **kw), False),
}


def entry(name: str) -> Entry:
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def build_model(name: str, cfg, vocab_size: int, num_classes: int, **extra) -> nn.Module:
    """extra: model-specific inputs, e.g. features_info for a frozen encoder trained on cached features."""
    return entry(name).build(cfg, vocab_size, num_classes, **extra)


def count_params(model: nn.Module) -> tuple[int, int]:
    """(total, trainable)."""
    if hasattr(model, "param_counts"):
        return model.param_counts()
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)
