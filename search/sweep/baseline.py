"""TF-IDF + logistic regression on the same split: the bar every neural model has to clear."""

import time

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from data_pipeline.prepare import PreparedData
from search.engine import metrics
from search.store.layout import Predictions
from search.store.records import Baseline

C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)


def tfidf_baseline(
    data: PreparedData, identity: str, seed: int = 42
) -> tuple[Baseline, dict[str, Predictions]]:
    """C is chosen on validation, like any other hyperparameter; test is read once. Returns the row and its
    class probabilities on val and test (for the leaderboard's paired comparisons)."""
    start = time.perf_counter()
    vectorizer = TfidfVectorizer(ngram_range=(1, 2), min_df=2, sublinear_tf=True, max_features=100_000)
    x_train = vectorizer.fit_transform(data.train.texts)
    x_val = vectorizer.transform(data.val.texts)
    y_train, y_val = data.train.labels.numpy(), data.val.labels.numpy()
    scores = {}
    for c in C_GRID:
        clf = LogisticRegression(C=c, max_iter=2000, random_state=seed).fit(x_train, y_train)
        scores[c] = float((clf.predict(x_val) == y_val).mean())
    best_c = max(C_GRID, key=lambda c: (scores[c], -c))
    clf = LogisticRegression(C=best_c, max_iter=2000, random_state=seed).fit(x_train, y_train)
    fit_s = time.perf_counter() - start
    infer_start = time.perf_counter()
    test_probs = clf.predict_proba(vectorizer.transform(data.test.texts))
    rate = len(test_probs) / (time.perf_counter() - infer_start)
    test = metrics(data.test.labels.numpy(), test_probs.argmax(1), data.num_classes)
    row = Baseline(
        model="tfidf+logreg",
        C=best_c,
        val_accuracy=scores[best_c],
        test=test,
        params=int(np.prod(clf.coef_.shape) + clf.intercept_.size),
        fit_s=fit_s,
        inference_per_s=rate,
        dataset=identity,
    )
    kept = {
        "val": Predictions(clf.predict_proba(x_val)[None], y_val, [seed]),
        "test": Predictions(test_probs[None], data.test.labels.numpy(), [seed]),
    }
    return row, kept
