"""Data: sources, cleaning, tokenization, leakage checks, vocabulary and a cached PreparedData."""

from data_pipeline.config import DataConfig
from data_pipeline.prepare import PreparedData, Split, prepare

__all__ = ["DataConfig", "PreparedData", "Split", "prepare"]
