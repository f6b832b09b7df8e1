"""RNN and LSTM classifiers that read each text's state at its last *real* token.

The original study read the state at the last padded position, so its RNN and LSTM saw mostly <PAD> and
predicted the majority class. Packing the sequences makes the output independent of padding.
"""
from dataclasses import dataclass

import torch
from torch import nn
from torch.nn.utils.rnn import pack_padded_sequence

from search.typed import check_range


@dataclass
class RecurrentConfig:
    embed_dim: int = 64
    hidden_dim: int = 64
    num_layers: int = 1
    bidirectional: bool = False
    dropout: float = 0.3

    def validate(self) -> None:
        check_range(self, "model", embed_dim=(1, None, True), hidden_dim=(1, None, True),
                    num_layers=(1, 8, True), dropout=(0.0, 0.95, True))


class RecurrentClassifier(nn.Module):
    def __init__(self, cell: str, cfg: RecurrentConfig, vocab_size: int, num_classes: int):
        super().__init__()
        self.directions = 2 if cfg.bidirectional else 1
        self.embed = nn.Embedding(vocab_size, cfg.embed_dim, padding_idx=0)
        self.drop = nn.Dropout(cfg.dropout)
        layer = {"rnn": nn.RNN, "lstm": nn.LSTM}[cell]
        self.rnn = layer(cfg.embed_dim, cfg.hidden_dim, num_layers=cfg.num_layers, batch_first=True,
                         bidirectional=cfg.bidirectional, dropout=cfg.dropout if cfg.num_layers > 1 else 0.0)
        self.head = nn.Linear(cfg.hidden_dim * self.directions, num_classes)

    def forward(self, batch: dict) -> torch.Tensor:
        x = self.drop(self.embed(batch["ids"]))
        lengths = batch["lengths"].clamp(min=1).cpu()
        packed = pack_padded_sequence(x, lengths, batch_first=True, enforce_sorted=False)
        _, state = self.rnn(packed)
        hidden = state[0] if isinstance(state, tuple) else state  # LSTM returns (h, c)
        last = hidden[-self.directions:].transpose(0, 1).reshape(x.size(0), -1)
        return self.head(self.drop(last))
