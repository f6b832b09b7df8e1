"""Model registry: every architecture is made by name with `build_model`, and its entry owns all that
differs between models: its config class (knobs and defaults), how it is built, what it reads, which knobs
change what it reads, and how it is timed from raw text.

A new architecture is one module here, one `register(...)` line below and one configs/<name>.yaml. Nothing
outside models/ names a model's inputs or decides by its knobs: the engine batches by the entry's `batching`,
the sweep builds input variants in the entry's `build_order`, and what the inputs add to the data report
travels in their info under REPORT.
"""

from dataclasses import dataclass
from typing import Any, Callable, Optional

from torch import nn

from configs.errors import UserError
from models.batching import UNBATCHED, Batching
from models.encoder import EncoderClassifier, EncoderConfig
from models.features import ENCODER_BATCHING, encoder_inputs, encoder_text_inputs, encoder_text_model
from models.inputs import REPORT, VOCAB_BATCHING, vocab_inputs, vocab_text_inputs
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
    batching: Batching = UNBATCHED  # how the training loop batches the inputs (their lengths, padded keys)
    # cfg -> a sort key: the order in which a sweep builds its input variants (None: as the space lists them)
    build_order: Optional[Callable[..., Any]] = None


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
    return Entry(
        config, build, vocab_inputs, VOCAB_KEYS, text_inputs=vocab_text_inputs, batching=VOCAB_BATCHING
    )


def unfrozen_first(cfg) -> int:
    """An encoder's pass for the states below unfrozen layers caches its frozen features too: build it
    first."""
    return -cfg.unfreeze_layers


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
        batching=ENCODER_BATCHING,
        build_order=unfrozen_first,
    ),
)


def entry(name: str) -> Entry:
    if name not in MODELS:
        raise UserError(f"unknown model {name!r}; choose one of {', '.join(MODELS)}")
    return MODELS[name]


def build_model(name: str, cfg, num_classes: int, info: dict) -> nn.Module:
    """info: what the model's inputs say about themselves (vocabulary size, cached-feature sizes)."""
    return entry(name).build(cfg, num_classes, info)


def input_report(info: dict) -> dict:
    """What a model's inputs add to the data report ({"embeddings": {..., "summary": "..."}} for word
    vectors)."""
    return dict(info.get(REPORT, {}))


def input_lines(info: dict) -> list[str]:
    """The data report's extra lines for those inputs."""
    return [part["summary"] for part in input_report(info).values() if "summary" in part]


def builder_info(info: dict) -> dict:
    """The info a builder needs: without the report, which only describes the inputs."""
    return {k: v for k, v in info.items() if k != REPORT}


def count_params(model: nn.Module) -> tuple[int, int]:
    """(total, trainable)."""
    if hasattr(model, "param_counts"):
        return model.param_counts()
    params = list(model.parameters())
    return sum(p.numel() for p in params), sum(p.numel() for p in params if p.requires_grad)
