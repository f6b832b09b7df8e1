"""Cleaning and tokenization, applied after the split so no statistic crosses splits."""

import re
from functools import lru_cache
from importlib import resources

_TAG = re.compile(r"<[^>]*>")
_URL = re.compile(r"(?:https?://|ftp://|www\.)\S+")
_EMAIL = re.compile(r"\S+@\S+\.\S+")
# Apostrophes survive cleaning so the tokenizer can still split "don't" into "do" + "n't".
_SPECIAL = re.compile(r"[^a-z0-9'\s]+")
_SPACE = re.compile(r"\s+")

NEGATIONS = frozenset({"not", "no", "nor"})


@lru_cache(maxsize=1)
def word_tokenizer():
    """NLTK's word tokenizer (what nltk.word_tokenize uses per sentence), imported only when text is used:
    importing nltk takes a second and pulls in scipy, which sweep trials never need."""
    from nltk.tokenize import NLTKWordTokenizer

    return NLTKWordTokenizer()


def clean(text: str) -> str:
    text = text.lower()
    text = _TAG.sub(" ", text)
    text = _URL.sub(" ", text)
    text = _EMAIL.sub(" ", text)
    text = _SPECIAL.sub(" ", text)
    return _SPACE.sub(" ", text).strip()


@lru_cache(maxsize=1)
def stopwords() -> frozenset:
    """NLTK's English list, shipped as package data because nltk.download needs a network."""
    path = resources.files("data_pipeline") / "nltk_data" / "corpora" / "stopwords" / "english"
    return frozenset(path.read_text(encoding="utf-8").split())


def tokenize(cleaned: str, keep_negations: bool, min_len: int = 3, drop_stopwords: bool = True) -> list[str]:
    stop = (stopwords() - NEGATIONS if keep_negations else stopwords()) if drop_stopwords else frozenset()
    tokens = []
    for token in word_tokenizer().tokenize(cleaned):
        if token == "n't":
            token = "not"
        token = token.strip("'")
        if token in stop:
            continue
        if len(token) >= min_len or (keep_negations and token in NEGATIONS):
            tokens.append(token)
    return tokens


def process(
    text: str, keep_negations: bool, min_len: int = 3, drop_stopwords: bool = True
) -> tuple[str, str]:
    """(cleaned text, processed text): the encoder reads the first, the vocabulary models the second."""
    cleaned = clean(text)
    return cleaned, " ".join(tokenize(cleaned, keep_negations, min_len, drop_stopwords))
