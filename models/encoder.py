"""A pretrained Hugging Face encoder (DistilBERT by default, any BERT-like model by name or local path)
with a small MLP head. Frozen by default; `unfreeze_layers` trains the top n transformer layers too.

What is frozen never changes, so it runs once per dataset and is cached (models/features.py): a frozen
encoder's pooled features, or, with the top n layers unfrozen, the hidden states below them. Training then
runs only what learns: the head, or the top n layers and the head.
"""

import logging
from dataclasses import dataclass
from types import SimpleNamespace
from typing import Literal

import torch
from torch import nn

from configs.errors import UserError
from configs.typed import check_range


@dataclass
class EncoderConfig:
    encoder: str = "distilbert-base-uncased"  # a Hugging Face name or a local directory
    max_length: int = 256  # tokens, [CLS] and [SEP] included
    # A longer text keeps its start (head), its end (tail), or half of each (head+tail).
    truncate: Literal["head", "tail", "head+tail"] = "head+tail"
    # What the head reads. mean: the mean over tokens; cls: [CLS]; pooler: the model's pooler on [CLS] where
    # it has one, else [CLS]. auto: mean for a frozen encoder (sentence encoders are trained for it: on
    # IMDB-2k, 81-82% val against 72-75% for [CLS] or the pooler), the pooler once top layers train, because
    # then the top layer computes one row instead of every token (6x faster an epoch; README).
    pooling: Literal["auto", "cls", "pooler", "mean"] = "auto"
    head_dim: int = 128
    dropout: float = 0.3
    unfreeze_layers: int = 0
    # Texts per batch in the driver's one pass over the encoder. 16 rather than 64: at 256 tokens a batch of
    # 64 holds every layer's states and attention, and the driver peaked at 2,237 MB against 1,460 MB with
    # 16 (6 MiniLM trials on IMDB-2k, empty cache, docs/benchmarks.md), and the pass was no slower.
    encode_batch_size: int = 16

    def validate(self) -> None:
        check_range(
            self,
            "model",
            max_length=(8, 512, True),
            head_dim=(1, None, True),
            dropout=(0.0, 0.95, True),
            unfreeze_layers=(0, 48, True),
            encode_batch_size=(1, None, True),
        )


def load_encoder(name: str, with_model: bool = True):
    """(tokenizer, model or None), from a local directory or cache first and the Hub only after that."""
    from transformers import AutoModel, AutoTokenizer
    from transformers.utils import logging as hf_logging

    hf_logging.set_verbosity_error()
    hf_logging.disable_progress_bar()
    logging.getLogger("huggingface_hub").setLevel(logging.ERROR)
    for local_only in (True, False):
        try:
            tokenizer = AutoTokenizer.from_pretrained(name, local_files_only=local_only)
            model = (
                AutoModel.from_pretrained(name, local_files_only=local_only).eval() if with_model else None
            )
            return tokenizer, model
        except (OSError, ValueError) as err:
            last = err
    raise UserError(
        f"cannot load encoder {name!r} ({str(last).splitlines()[0][:120]}); with no network, save it "
        "once with save_pretrained() on a machine that has one and pass --encoder /path/to/dir"
    ) from None


def transformer_layers(encoder: nn.Module) -> nn.ModuleList:
    """The stack of transformer blocks (DistilBERT: transformer.layer, BERT: encoder.layer)."""
    stacks = [
        m
        for name, m in encoder.named_modules()
        if isinstance(m, nn.ModuleList) and name.endswith(("layer", "layers"))
    ]
    if not stacks:
        raise UserError(
            f"cannot find the transformer layers of {type(encoder).__name__} to unfreeze; "
            "set model.unfreeze_layers=0"
        )
    return max(stacks, key=len)


def resolve_pooling(cfg: EncoderConfig) -> str:
    """cfg.pooling with auto resolved: mean, cls or pooler."""
    if cfg.pooling != "auto":
        return cfg.pooling
    return "mean" if cfg.unfreeze_layers == 0 else "pooler"


def pool(outputs, attention_mask: torch.Tensor, pooling: str) -> torch.Tensor:
    """The head's input; pooling is resolved (mean, cls or pooler)."""
    if pooling == "mean":
        weights = attention_mask.unsqueeze(-1).to(outputs.last_hidden_state.dtype)
        return (outputs.last_hidden_state * weights).sum(1) / weights.sum(1).clamp(min=1)
    pooled = getattr(outputs, "pooler_output", None)
    if pooling == "pooler" and pooled is not None:
        return pooled
    return outputs.last_hidden_state[:, 0]  # [CLS]; DistilBERT has no pooler


def first_row(layer: nn.Module, x: torch.Tensor, mask: torch.Tensor) -> torch.Tensor | None:
    """A BERT-like or DistilBERT layer's output at the first position only, (B, 1, H): its query, attention
    output and feed-forward for one row instead of T, with keys and values from every row. [CLS] and pooler
    pooling read nothing else, so the top layer costs about a fifth as much. None for other layer types."""
    attention = getattr(layer, "attention", None)
    inner = getattr(attention, "self", None)
    if hasattr(inner, "query") and hasattr(layer, "intermediate") and not getattr(layer, "is_decoder", False):
        context = attend(
            inner.query, inner.key, inner.value, inner.num_attention_heads, inner.dropout, x, mask
        )
        a = attention.output(context, x[:, :1])
        return layer.output(layer.intermediate(a), a)
    if hasattr(attention, "q_lin") and hasattr(layer, "ffn"):
        context = attend(
            attention.q_lin, attention.k_lin, attention.v_lin, attention.n_heads, attention.dropout, x, mask
        )
        a = layer.sa_layer_norm(attention.out_lin(context) + x[:, :1])
        return layer.output_layer_norm(layer.ffn(a) + a)
    return None


def attend(query: nn.Linear, key: nn.Linear, value: nn.Linear, heads: int, dropout: nn.Dropout, x, mask):
    """Multi-head attention of the first row over every unmasked row: (B, 1, H); the attention weights
    dropped out as the layer's own attention drops them (only in training)."""
    b, t, h = x.shape
    q = query(x[:, :1]).view(b, 1, heads, h // heads).transpose(1, 2)
    k = key(x).view(b, t, heads, h // heads).transpose(1, 2)
    v = value(x).view(b, t, heads, h // heads).transpose(1, 2)
    keep = mask[:, None, None, :].bool()
    out = nn.functional.scaled_dot_product_attention(
        q, k, v, attn_mask=keep, dropout_p=dropout.p if dropout.training else 0.0
    )
    return out.transpose(1, 2).reshape(b, 1, h)


def layer_output(layer: nn.Module, x: torch.Tensor, layer_mask) -> torch.Tensor:
    """A whole layer's hidden states (some Hugging Face layers return a tuple that starts with them)."""
    out = layer(x, layer_mask)
    return out[0] if isinstance(out, tuple) else out


class EncoderClassifier(nn.Module):
    """Reads one of three inputs. "features": pooled outputs of a frozen encoder, cached; only the head is in
    memory (features_info gives its sizes). "hidden" + "attention_mask": cached states below the top
    `unfreeze_layers` layers; only those layers (and the pooler) and the head are in memory. "input_ids" +
    "attention_mask": token ids through the whole encoder (from text, e.g. to time it)."""

    def __init__(
        self,
        cfg: EncoderConfig,
        num_classes: int,
        encoder: nn.Module | None = None,
        features_info: dict | None = None,
    ):
        super().__init__()
        self.cfg = cfg
        info = features_info or {}
        if encoder is None and not (info and cfg.unfreeze_layers == 0):
            encoder = load_encoder(cfg.encoder)[1]
        self.encoder_params = (
            sum(p.numel() for p in encoder.parameters()) if encoder is not None else info["encoder_params"]
        )
        hidden = encoder.config.hidden_size if encoder is not None else info["hidden_size"]
        self.head = nn.Sequential(
            nn.Dropout(cfg.dropout),
            nn.Linear(hidden, cfg.head_dim),
            nn.ReLU(),
            nn.Dropout(cfg.dropout),
            nn.Linear(cfg.head_dim, num_classes),
        )
        self.encoder, self.top, self.pooler = encoder, None, None
        if encoder is None:
            return
        encoder.requires_grad_(False)
        if not cfg.unfreeze_layers:
            return
        layers = transformer_layers(encoder)
        if cfg.unfreeze_layers > len(layers):
            raise UserError(
                f"model.unfreeze_layers={cfg.unfreeze_layers} but {cfg.encoder} has {len(layers)} layers"
            )
        for layer in layers[-cfg.unfreeze_layers :]:
            layer.requires_grad_(True)
        if info.get("lower_states"):  # keep only the layers that learn: the rest ran once, into the cache
            self.top = nn.ModuleList(layers[-cfg.unfreeze_layers :])
            self.pooler = getattr(encoder, "pooler", None)
            self.encoder_config = encoder.config
            self.encoder = None

    @property
    def frozen(self) -> bool:
        return self.cfg.unfreeze_layers == 0

    @property
    def pooling(self) -> str:
        return resolve_pooling(self.cfg)

    def train(self, mode: bool = True):
        super().train(mode)
        if self.frozen and self.encoder is not None:
            self.encoder.eval()  # a frozen encoder keeps its dropout off
        return self

    def param_counts(self) -> tuple[int, int]:
        """(total, trainable), the whole encoder counted even where only part of it is in memory."""
        head = sum(p.numel() for p in self.head.parameters())
        trainable = sum(p.numel() for p in self.parameters() if p.requires_grad)
        return head + self.encoder_params, trainable

    def encode(self, batch: dict) -> torch.Tensor:
        outputs = self.encoder(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"])
        return pool(outputs, batch["attention_mask"], self.pooling)

    def encode_top(self, batch: dict) -> torch.Tensor:
        """The top layers on cached lower states, masked as the encoder masks its own layers. Where pooling
        reads only the first position ([CLS] or the pooler), the last layer computes only that row."""
        from transformers.masking_utils import create_bidirectional_mask

        x, mask = batch["hidden"].float(), batch["attention_mask"]  # cached as float16 (models/features.py)
        layer_mask = create_bidirectional_mask(
            config=self.encoder_config, inputs_embeds=x, attention_mask=mask
        )
        *below, last = self.top
        for layer in below:
            x = layer_output(layer, x, layer_mask)
        first = first_row(last, x, mask) if self.pooling != "mean" else None
        if first is not None:
            x, mask = first, mask[:, :1]
        else:
            x = layer_output(last, x, layer_mask)
        pooled = self.pooler(x) if self.pooler is not None else None
        return pool(SimpleNamespace(last_hidden_state=x, pooler_output=pooled), mask, self.pooling)

    def forward(self, batch: dict) -> torch.Tensor:
        if "features" in batch:
            return self.head(batch["features"].float())  # cached as float16
        return self.head(self.encode_top(batch) if "hidden" in batch else self.encode(batch))

    def with_encoder(self) -> "EncoderClassifier":
        """The same classifier reading token ids through a whole encoder: for prediction from text."""
        if self.encoder is not None:
            return self
        full = EncoderClassifier(self.cfg, self.head[-1].out_features)
        full.head.load_state_dict(self.head.state_dict())
        if self.top is not None:
            for mine, theirs in zip(self.top, transformer_layers(full.encoder)[-len(self.top) :]):
                theirs.load_state_dict(mine.state_dict())
            if self.pooler is not None:
                full.encoder.pooler.load_state_dict(self.pooler.state_dict())
        return full.eval()
