"""TF-IDF + logistic regression on the same split: the bar every neural model has to clear."""

import time

import numpy as np
from sklearn.feature_extraction.text import TfidfVectorizer
from sklearn.linear_model import LogisticRegression

from data_pipeline.prepare import PreparedData
from search.engine import metrics

C_GRID = (0.3, 1.0, 3.0, 10.0, 30.0)


def tfidf_baseline(data: PreparedData, seed: int = 42) -> dict:
    """C is chosen on validation, like any other hyperparameter; test is read once."""
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
    preds = clf.predict(vectorizer.transform(data.test.texts))
    rate = len(preds) / (time.perf_counter() - infer_start)
    test = metrics(data.test.labels.numpy(), preds, data.num_classes)
    params = int(np.prod(clf.coef_.shape) + clf.intercept_.size)
    return {
        "model": "tfidf+logreg",
        "C": best_c,
        "val_accuracy": scores[best_c],
        "test": test,
        "params": params,
        "fit_s": fit_s,
        "inference_per_s": rate,
    }
