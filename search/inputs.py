"""What each model reads, as dicts of tensors per split: vocabulary ids for the custom models; cached
features (frozen) or the encoder's own token ids (partly unfrozen) for the pretrained encoder."""
import itertools

from data_pipeline.features import frozen_features, pick, tokenize
from data_pipeline.prepare import PreparedData
from models import build_model, entry
from search.engine import Tensors

# Searchable settings that change the inputs themselves (not just the model): each value needs its own inputs.
INPUT_KEYS = ("model.pooling", "model.max_length", "model.unfreeze_layers")


def model_inputs(model_name: str, model_cfg, data: PreparedData, splits=("train", "val"),
                 cache_dir: str | None = None) -> tuple[dict[str, Tensors], dict]:
    """({split: tensors}, extra kwargs for build_model). The sweep asks for train and val only."""
    if entry(model_name).uses_vocab:
        out = {s: {"ids": getattr(data, s).ids, "lengths": getattr(data, s).lengths,
                   "labels": getattr(data, s).labels} for s in splits}
        return out, {}
    if model_cfg.unfreeze_layers == 0:
        feats = frozen_features(data, model_cfg, cache_dir)
        out = {s: {"features": pick(feats[s], model_cfg.pooling), "labels": getattr(data, s).labels} for s in splits}
        return out, {"features_info": feats["info"]}
    from models.encoder import load_encoder

    tokenizer, _ = load_encoder(model_cfg.encoder, with_model=False)
    out = {s: tokenize(tokenizer, getattr(data, s).clean_texts, model_cfg.max_length) | {"labels": getattr(data, s).labels}
           for s in splits}
    return out, {}  # the model loads its own encoder: each build needs fresh weights to fine-tune


def make_model(model_name: str, model_cfg, vocab_size: int, num_classes: int, extra: dict):
    return build_model(model_name, model_cfg, vocab_size, num_classes, **extra)


def variant(model_name: str, model_cfg) -> str:
    """Which inputs a configuration reads: one set for vocabulary models, one per feature setting otherwise."""
    if entry(model_name).uses_vocab:
        return "vocab"
    if model_cfg.unfreeze_layers:
        return f"tokens/{model_cfg.max_length}"
    return f"features/{model_cfg.pooling}/{model_cfg.max_length}"


def sweep_inputs(settings, data: PreparedData, cache_dir: str | None = None) -> tuple[dict, dict]:
    """({variant: inputs}, {variant: build extras}) for train and val, for every input-changing value the
    search space can choose, so each trial reads inputs that match its own configuration."""
    from search.settings import apply_params

    choices = {k: rule["choice"] for k, rule in settings.search.space.items() if k in INPUT_KEYS}
    inputs, extras = {}, {}
    for values in itertools.product(*choices.values()):
        cfg = apply_params(settings, dict(zip(choices, values)))
        key = variant(cfg.model_name, cfg.model)
        if key not in inputs:
            inputs[key], extras[key] = model_inputs(cfg.model_name, cfg.model, data, ("train", "val"), cache_dir)
    return inputs, extras
