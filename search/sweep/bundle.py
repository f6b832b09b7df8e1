"""The winner on disk, self-contained: runs/<name>/<model>/model/ holds the settings it was trained with, how
its text was processed, its vocabulary, the label names, and the weights of each retrain seed. What the
weights do not hold is named: the pretrained encoder below a head, loaded again by its name or path.
runs/<name>/ensemble/model/ names the members of the ensemble and their weights instead.

    bundle = load_bundle(RunDir(Path("runs/imdb")).model("lstm").bundle)
    probabilities = bundle.predict(["a wonderful film"])  # (N, classes), the best seed's
"""

import dataclasses
from dataclasses import dataclass

import numpy as np
import torch
from safetensors.torch import load_file

from configs.errors import UserError
from configs.typed import from_dict
from data_pipeline.config import DataConfig
from data_pipeline.prepare import UNK, PreparedData, encode
from data_pipeline.text import process
from models import build_model, builder_info, entry
from search.core.served import combine, seed_mean
from search.engine import TrainConfig, predict, set_threads
from search.store.layout import BundleDir, ModelDir, RunDir
from search.store.records import Retrain

# 2: encoder pooling auto means mean when frozen (it was the pooler); 3: "kind", model or ensemble
FORMAT = 3
READS = (2, 3)


def _portable(info: dict) -> dict:
    """The builder's info as JSON: a tensor (pretrained vectors) becomes its shape, since the weights file
    holds what training made of it and the builder needs only the shape."""
    return {
        k: {"tensor": list(v.shape), "dtype": str(v.dtype).removeprefix("torch.")}
        if isinstance(v, torch.Tensor)
        else v
        for k, v in info.items()
    }


def _unportable(info: dict) -> dict:
    return {
        k: torch.zeros(v["tensor"], dtype=getattr(torch, v["dtype"]))
        if isinstance(v, dict) and "tensor" in v
        else v
        for k, v in info.items()
    }


def save_bundle(bundle: BundleDir, settings, data: PreparedData, info: dict, retrain_result: Retrain) -> None:
    """Write meta.json beside the weights that search.sweep.retrain saved in the bundle."""
    report = data.report
    meta = {
        "format": FORMAT,
        "kind": "model",
        "model": settings.model_name,
        "dataset": data.name,
        "label_names": data.label_names,
        "settings": {s: dataclasses.asdict(settings.section(s)) for s in ("data", "model", "train")},
        # what data_pipeline resolved for this dataset ("auto" settings), so new text is processed the same
        "preprocess": {
            "keep_negations": report["keep_negations"],
            "drop_stopwords": report["stopwords"] == "dropped",
            "min_token_len": settings.data.min_token_len,
            "truncate": data.truncate,
            "max_len": settings.data.max_len,
        },
        "vocab": data.vocab,
        "info": _portable(builder_info(info)),
        "seeds": [
            {
                "seed": r.seed,
                "weights": BundleDir.weights_name(r.seed),
                "best_val_loss": r.best_val_loss,
                "test_accuracy": r.test["accuracy"],
            }
            for r in retrain_result.seeds
        ],
    }
    bundle.write_meta(meta)


def save_ensemble(
    bundle: BundleDir, members: dict[str, float], label_names: list[str], dataset: str, score: dict
):
    """The ensemble: which retrained models, with which weights, average their seed-averaged probabilities."""
    bundle.write_meta(
        {
            "format": FORMAT,
            "kind": "ensemble",
            "dataset": dataset,
            "label_names": label_names,
            "members": members,
            "validation": score,
            "seeds": [],
        }
    )


@dataclass
class Bundle:
    path: BundleDir
    meta: dict
    settings: object  # search.core.settings.Settings without the search section
    models: dict  # {seed: nn.Module}

    @property
    def label_names(self) -> list[str]:
        return self.meta["label_names"]

    @property
    def seeds(self) -> list[int]:
        return [s["seed"] for s in self.meta["seeds"]]

    def best_seed(self) -> int:
        """The seed whose retrain reached the lowest validation loss (test is not looked at)."""
        return min(self.meta["seeds"], key=lambda s: s["best_val_loss"])["seed"]

    def inputs(self, texts: list[str]) -> dict:
        """The model's input tensors for raw texts, made exactly as the training data was."""
        pre = self.meta["preprocess"]
        rows = []
        for text in texts:
            cleaned, processed = process(
                text, pre["keep_negations"], pre["min_token_len"], pre["drop_stopwords"]
            )
            # Training drops a text that processing empties; a prediction must answer, so it reads <unk>.
            rows.append((cleaned, processed or UNK, 0))
        split = encode(rows, self.meta["vocab"], pre["max_len"], pre["truncate"])
        empty = encode([], self.meta["vocab"], pre["max_len"], pre["truncate"])
        # The new texts stand where the test split stood: the registry makes a test split's inputs.
        data = PreparedData(
            self.meta["dataset"],
            self.label_names,
            self.meta["vocab"],
            train=empty,
            val=empty,
            test=split,
            max_len=pre["max_len"],
            truncate=pre["truncate"],
        )
        return text_inputs(self.settings, data)

    def seed_probs(self, texts: list[str], seeds: list[int]) -> np.ndarray:
        """Each seed's class probabilities (seeds, texts, classes), float32 as the retrain recorded them."""
        set_threads(self.settings.train.threads)
        tensors = self.inputs(texts) | {"labels": torch.zeros(len(texts), dtype=torch.int64)}
        train, batching = self.settings.train, entry(self.meta["model"]).batching
        return np.stack(
            [
                predict(self.models[s], tensors, train.eval_batch_size, train.bf16, batching)
                .softmax(1)
                .numpy()
                for s in seeds
            ]
        )

    def predict(self, texts: list[str], seeds: list[int] | None = None) -> np.ndarray:
        """Class probabilities (texts, classes), averaged over `seeds` (default: the best seed)."""
        return seed_mean(self.seed_probs(texts, seeds or [self.best_seed()]))


class Seedless:
    """A served model without retrain seeds of its own (the ensemble, the baseline): its labels from meta."""

    meta: dict

    @property
    def label_names(self) -> list[str]:
        return self.meta["label_names"]

    @property
    def seeds(self) -> list[int]:
        return []


@dataclass
class EnsembleBundle(Seedless):
    path: BundleDir
    meta: dict
    members: dict  # {model: Bundle}

    def predict(self, texts: list[str], seeds=None) -> np.ndarray:
        """The weighted mean of each member's probabilities averaged over all its seeds, as the ensemble was
        chosen and scored."""
        probs = {m: b.predict(texts, b.seeds) for m, b in self.members.items()}
        return combine(probs, self.meta["members"])


@dataclass
class BaselineBundle(Seedless):
    """TF-IDF + logistic regression as it was fitted, rebuilt from its vocabulary, idf and weights."""

    path: BundleDir
    meta: dict
    vectorizer: object
    classifier: object

    def predict(self, texts: list[str], seeds=None) -> np.ndarray:
        pre = self.meta["preprocess"]
        processed = [
            process(t, pre["keep_negations"], pre["min_token_len"], pre["drop_stopwords"])[1] for t in texts
        ]
        return self.classifier.predict_proba(self.vectorizer.transform(processed))


def _load_baseline(bundle: BundleDir, meta: dict) -> BaselineBundle:
    from safetensors.numpy import load_file as load_arrays
    from sklearn.feature_extraction.text import TfidfVectorizer
    from sklearn.linear_model import LogisticRegression

    try:
        arrays = load_arrays(str(bundle.arrays))
        settings = meta["vectorizer"]
        vocabulary = {term: i for i, term in enumerate(meta["vocabulary"])}
    except (OSError, KeyError, TypeError) as err:
        raise UserError(
            f"{bundle.root} is damaged ({str(err).splitlines()[0]}); delete that folder and run the same "
            "python -m search.tune command again: it fits the baseline again"
        ) from None
    vectorizer = TfidfVectorizer(
        ngram_range=tuple(settings["ngram_range"]),
        sublinear_tf=settings["sublinear_tf"],
        vocabulary=vocabulary,
    )
    vectorizer.idf_ = arrays["idf"]
    classifier = LogisticRegression(C=meta["C"])
    classifier.classes_, classifier.coef_, classifier.intercept_ = (
        arrays["classes"],
        arrays["coef"],
        arrays["intercept"],
    )
    return BaselineBundle(bundle, meta, vectorizer, classifier)


def text_inputs(settings, data: PreparedData) -> dict:
    """The test split's input tensors, made without the disk cache (new texts have no cache key)."""
    model_entry = entry(settings.model_name)
    if model_entry.text_inputs is not None:
        return model_entry.text_inputs(settings.model, data)
    tensors = model_entry.inputs(settings.model, data, ("test",), None)[0]["test"]
    return {k: v for k, v in tensors.items() if k != "labels"}


def _read_meta(bundle: BundleDir) -> dict:
    meta = bundle.read_meta()
    if meta is None:
        raise UserError(
            f"{bundle.root} holds no trained model ({BundleDir.META} is missing); its sweep has not finished"
        )
    if meta.get("format") not in READS:
        raise UserError(
            f"{bundle.root} was written by another version of sweetspot (format {meta.get('format')}, "
            f"this one reads {', '.join(map(str, READS))}); run its sweep again with python -m search.tune "
            "... --fresh to retrain it"
        )
    return meta


def load_bundle(bundle: BundleDir) -> Bundle | EnsembleBundle | BaselineBundle:
    meta = _read_meta(bundle)
    if meta.get("kind") == "baseline":
        return _load_baseline(bundle, meta)
    if meta.get("kind") == "ensemble":
        run = RunDir(bundle.run_root)
        return EnsembleBundle(bundle, meta, {m: load_bundle(run.model(m).bundle) for m in meta["members"]})
    return _load_model(bundle, meta)


def _load_model(bundle: BundleDir, meta: dict) -> Bundle:
    from search.core.settings import SearchConfig, Settings

    try:
        model_entry = entry(meta["model"])
        raw = meta["settings"]
        settings = Settings(
            meta["model"],
            from_dict(DataConfig, raw["data"], "data"),
            from_dict(model_entry.config, raw["model"], "model"),
            from_dict(TrainConfig, raw["train"], "train"),
            SearchConfig(),
        )
        info = _unportable(meta["info"])
        seeds = meta["seeds"]
    except (KeyError, TypeError, AttributeError) as err:
        raise UserError(
            f"{bundle.meta_path} is damaged (no {err}); delete {bundle.root.parent / ModelDir.SUMMARY} "
            "and run the same python -m search.tune command again: it retrains from the finished trials"
        ) from None
    models = {}
    for seed in seeds:
        weights = bundle.weights(seed["seed"])
        if not weights.is_file():
            raise UserError(
                f"{weights} is missing; the model directory is incomplete, so run the sweep again"
            )
        model = build_model(meta["model"], settings.model, len(meta["label_names"]), info)
        model.load_state_dict(load_file(str(weights)))
        models[seed["seed"]] = model.eval()
    return Bundle(bundle, meta, settings, models)
