"""What each model reads, as dicts of tensors per split: vocabulary ids for the custom models; cached
features (frozen) or the encoder's own token ids (partly unfrozen) for the pretrained encoder."""
from data_pipeline.features import frozen_features, tokenize
from data_pipeline.prepare import PreparedData
from models import build_model, entry
from search.engine import Tensors


def model_inputs(model_name: str, model_cfg, data: PreparedData, splits=("train", "val"),
                 cache_dir: str | None = None) -> tuple[dict[str, Tensors], dict]:
    """({split: tensors}, extra kwargs for build_model). The sweep asks for train and val only."""
    if entry(model_name).uses_vocab:
        out = {s: {"ids": getattr(data, s).ids, "lengths": getattr(data, s).lengths,
                   "labels": getattr(data, s).labels} for s in splits}
        return out, {}
    if model_cfg.unfreeze_layers == 0:
        feats = frozen_features(data, model_cfg, cache_dir)
        out = {s: {"features": feats[s], "labels": getattr(data, s).labels} for s in splits}
        return out, {"features_info": feats["info"]}
    from models.encoder import load_encoder

    tokenizer, _ = load_encoder(model_cfg.encoder, with_model=False)
    out = {s: tokenize(tokenizer, getattr(data, s).clean_texts, model_cfg.max_length) | {"labels": getattr(data, s).labels}
           for s in splits}
    return out, {}  # the model loads its own encoder: each build needs fresh weights to fine-tune


def make_model(model_name: str, model_cfg, vocab_size: int, num_classes: int, extra: dict):
    return build_model(model_name, model_cfg, vocab_size, num_classes, **extra)
