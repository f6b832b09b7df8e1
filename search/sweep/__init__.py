"""The sweep: Ray Tune + Optuna + ASHA over one model's space, then the retrain of the best configuration.

- pipeline.py: one model's sweep step by step (check, search, record, pick, retrain, summarise);
- identity.py: what a sweep is, so a resume never mixes two searches;
- tuner.py: run or resume the search in Ray Tune; searcher.py: the sampler and the scheduler;
- trial.py: one trial in a Ray worker; inputs.py: the inputs every trial may read;
- results.py: Tune's results as records; progress.py: the progress line and the live study;
- cluster.py: the Ray cluster; storage.py: where trials are kept; interrupt.py: Ctrl-C and SIGTERM;
- budget.py: --time-budget; warmstart.py: --warm-start;
- retrain.py: the retrain on seeds (the only reader of test); baseline.py: TF-IDF + LR; bundle.py: the model
  on disk for search.predict.

It may import configs/, data_pipeline/, models/, search.engine, search.core and search.store.
"""
