"""A small Transformer encoder: padding is masked in attention and left out of the mean pooling."""

import math
from dataclasses import dataclass

import torch
from torch import nn

from configs.errors import UserError
from configs.typed import check_range
from models.embeddings import WordEmbedding
from models.layers import Dropout, EncoderLayer


@dataclass
class TransformerConfig:
    embed_dim: int = 64
    num_heads: int = 4
    ff_dim: int = 128
    num_layers: int = 2
    dropout: float = 0.3
    max_positions: int = 512
    embeddings: str = "none"  # none | glove-50d | a vectors file (models/embeddings.py)
    freeze_embeddings: bool = False

    def validate(self) -> None:
        check_range(
            self,
            "model",
            embed_dim=(1, None, True),
            num_heads=(1, None, True),
            ff_dim=(1, None, True),
            num_layers=(1, 12, True),
            dropout=(0.0, 0.95, True),
            max_positions=(1, None, True),
        )
        if self.embed_dim % self.num_heads:
            raise UserError(
                f"model.embed_dim ({self.embed_dim}) must be divisible by model.num_heads ({self.num_heads})"
            )


def sinusoidal_positions(length: int, dim: int) -> torch.Tensor:
    position = torch.arange(length).unsqueeze(1)
    freq = torch.exp(torch.arange(0, dim, 2) * (-math.log(10000.0) / dim))
    table = torch.zeros(length, dim)
    table[:, 0::2] = torch.sin(position * freq)
    table[:, 1::2] = torch.cos(position * freq)[:, : dim // 2]
    return table


class TransformerClassifier(nn.Module):
    def __init__(
        self,
        cfg: TransformerConfig,
        vocab_size: int,
        num_classes: int,
        vectors: torch.Tensor | None = None,
        found: torch.Tensor | None = None,
    ):
        super().__init__()
        self.scale = math.sqrt(cfg.embed_dim)
        self.embed = WordEmbedding(vocab_size, cfg.embed_dim, vectors, found, cfg.freeze_embeddings)
        self.register_buffer(
            "positions", sinusoidal_positions(cfg.max_positions, cfg.embed_dim), persistent=False
        )
        self.drop = Dropout(cfg.dropout)
        self.layers = nn.ModuleList(
            EncoderLayer(cfg.embed_dim, cfg.num_heads, cfg.ff_dim, cfg.dropout) for _ in range(cfg.num_layers)
        )
        self.head = nn.Linear(cfg.embed_dim, num_classes)

    def forward(self, batch: dict) -> torch.Tensor:
        ids, lengths = batch["ids"], batch["lengths"].clamp(min=1)
        real = torch.arange(ids.size(1), device=ids.device).unsqueeze(0) < lengths.unsqueeze(1)
        x = self.drop(self.embed(ids) * self.scale + self.positions[: ids.size(1)])
        key_bias = torch.zeros(real.shape, dtype=x.dtype, device=x.device).masked_fill(~real, float("-inf"))
        key_bias = key_bias[:, None, None, :]
        for layer in self.layers:
            x = layer(x, key_bias)
        weights = real.unsqueeze(-1).to(x.dtype)
        pooled = (x * weights).sum(1) / weights.sum(1)
        return self.head(self.drop(pooled))
