"""TF-IDF + logistic regression on the same split: the bar every neural model has to clear."""

import time

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from data_pipeline.prepare import PreparedData
from search.engine import metrics
from search.store.layout import BundleDir, Predictions
from search.store.records import Baseline

C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)
BASELINE_FORMAT = 3  # search/sweep/bundle.py reads it
VECTORIZER = {"ngram_range": (1, 2), "min_df": 2, "sublinear_tf": True, "max_features": 100_000}


def tfidf_baseline(
    data: PreparedData, identity: str, seed: int = 42
) -> tuple[Baseline, dict[str, Predictions], tuple]:
    """C is chosen by 5-fold cross-validation on the training texts (the vectorizer refitted in each fold),
    so the validation accuracy the row shows is held out like a retrain's, not the best of five on it; test is
    read once. Returns the row, its class probabilities on val and test (for the paired comparisons), and the
    fitted (vectorizer, classifier) that save_baseline_model keeps."""
    start = time.perf_counter()
    y_train, y_val = data.train.labels.numpy(), data.val.labels.numpy()
    best_c = choose_c(data.train.texts, y_train, seed)
    vectorizer = TfidfVectorizer(**VECTORIZER)
    x_train = vectorizer.fit_transform(data.train.texts)
    clf = LogisticRegression(C=best_c, max_iter=2000, random_state=seed).fit(x_train, y_train)
    fit_s = time.perf_counter() - start
    val_probs = clf.predict_proba(vectorizer.transform(data.val.texts))
    infer_start = time.perf_counter()
    test_probs = clf.predict_proba(vectorizer.transform(data.test.texts))
    rate = len(test_probs) / (time.perf_counter() - infer_start)
    test = metrics(data.test.labels.numpy(), test_probs.argmax(1), data.num_classes)
    row = Baseline(
        model="tfidf+logreg",
        C=best_c,
        val_accuracy=float((val_probs.argmax(1) == y_val).mean()),
        test=test,
        params=int(np.prod(clf.coef_.shape) + clf.intercept_.size),
        fit_s=fit_s,
        inference_per_s=rate,
        dataset=identity,
    )
    kept = {
        "val": Predictions(val_probs[None], y_val, [seed]),
        "test": Predictions(test_probs[None], data.test.labels.numpy(), [seed]),
    }
    return row, kept, (vectorizer, clf)


def save_baseline_model(bundle: BundleDir, fitted: tuple, data: PreparedData, min_token_len: int, c: float):
    """The TF-IDF + LR row as a model search.predict serves, in safe formats only (no pickle): meta.json holds
    how texts were processed and the vocabulary in column order; a safetensors file the idf, the weights
    and the intercepts, in float64 as fitted, so the served probabilities are the recorded ones."""
    from safetensors.numpy import save_file

    from search.store import files

    vectorizer, clf = fitted
    vocabulary = sorted(vectorizer.vocabulary_, key=vectorizer.vocabulary_.get)
    report = data.report
    bundle.root.mkdir(parents=True, exist_ok=True)
    arrays = {
        "idf": np.asarray(vectorizer.idf_, dtype=np.float64),
        "coef": np.asarray(clf.coef_, dtype=np.float64),
        "intercept": np.asarray(clf.intercept_, dtype=np.float64),
        "classes": np.asarray(clf.classes_, dtype=np.int64),
    }
    files.write_with(bundle.arrays, lambda tmp: save_file(arrays, str(tmp)))
    bundle.write_meta(
        {
            "format": BASELINE_FORMAT,
            "kind": "baseline",
            "model": "tfidf+logreg",
            "C": c,
            "dataset": data.name,
            "label_names": data.label_names,
            "preprocess": {
                "keep_negations": report["keep_negations"],
                "drop_stopwords": report["stopwords"] == "dropped",
                "min_token_len": min_token_len,
            },
            "vectorizer": {k: VECTORIZER[k] for k in ("ngram_range", "sublinear_tf")},
            "vocabulary": vocabulary,
            "seeds": [],
        }
    )


def choose_c(texts: list[str], labels: np.ndarray, seed: int = 42) -> float:
    """The C of the grid with the best 5-fold cross-validated accuracy on these texts (ties: the smaller).
    The vectorizer is refitted on each fold's training part (idf and vocabulary never see the held-out
    fold) and shared by the grid's fits on that fold."""
    from sklearn.model_selection import StratifiedKFold

    texts = np.asarray(texts, dtype=object)
    folds = max(2, min(5, int(np.bincount(labels).min())))
    right = dict.fromkeys(C_GRID, 0)
    for fit, held in StratifiedKFold(folds, shuffle=True, random_state=seed).split(texts, labels):
        vectorizer = TfidfVectorizer(**VECTORIZER)
        x_fit, x_held = vectorizer.fit_transform(texts[fit]), vectorizer.transform(texts[held])
        for c in C_GRID:
            clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x_fit, labels[fit])
            right[c] += int((clf.predict(x_held) == labels[held]).sum())
    return float(min(C_GRID, key=lambda c: (-right[c], c)))
