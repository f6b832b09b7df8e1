import copy

import numpy as np
import pytest
import torch
from torch import nn

from data_pipeline import DataConfig, prepare
from models import MODELS, build_model, entry
from models.inputs import VOCAB_BATCHING
from search.engine import TrainConfig, TrainingDiverged, fit, metrics, predict, seed_everything
from search.engine.loop import batches


@pytest.fixture(scope="module")
def ng_inputs(ng_archive):
    data = prepare(
        DataConfig(
            dataset="20newsgroups", data_path=str(ng_archive), train_size=600, val_size=200, test_size=100
        )
    )
    return data, entry("lstm").inputs(None, data)[0]


@pytest.mark.parametrize("name", ["rnn", "lstm", "transformer"])
def test_custom_models_learn_beyond_the_majority_class(name, ng_inputs):
    data, inputs = ng_inputs
    seed_everything(0)
    model = build_model(name, MODELS[name].config(), 2, {"vocab_size": len(data.vocab)})
    result = fit(model, inputs["train"], inputs["val"], TrainConfig(lr=3e-3, max_epochs=8, patience=8))
    majority = data.report["val_majority_share"]
    best = max(h.val_acc for h in result.history)
    assert best > majority + 0.08, (name, best, majority)
    assert not result.history[result.best_epoch - 1].collapse


def test_best_state_is_restored_after_early_stopping(imdb_small):
    inputs, _ = entry("lstm").inputs(None, imdb_small)
    seed_everything(1)
    model = build_model("lstm", MODELS["lstm"].config(), 2, {"vocab_size": len(imdb_small.vocab)})
    cfg = TrainConfig(lr=1e-2, max_epochs=12, patience=2)
    result = fit(model, inputs["train"], inputs["val"], cfg)
    assert result.stopped_early and result.best_epoch < len(result.history)
    loss = nn.CrossEntropyLoss(label_smoothing=cfg.label_smoothing)(
        predict(model, inputs["val"]), inputs["val"]["labels"]
    )
    assert float(loss) == pytest.approx(result.best_val_loss, abs=1e-5)
    stats = result.history[0]
    assert stats.seconds > 0 and stats.grad_norm > 0 and stats.lr == 1e-2


def test_resume_from_a_snapshot_continues_exactly(imdb_small):
    inputs, _ = entry("lstm").inputs(None, imdb_small)
    cfg = TrainConfig(max_epochs=3, patience=5)
    snapshots = {}

    def keep(stats, snapshot, last):
        snapshots[stats.epoch] = copy.deepcopy(snapshot())

    seed_everything(3)
    straight = fit(
        build_model("lstm", MODELS["lstm"].config(), 2, {"vocab_size": len(imdb_small.vocab)}),
        inputs["train"],
        inputs["val"],
        cfg,
        on_epoch=keep,
    )
    seed_everything(99)  # a different init: everything must come from the snapshot
    resumed = fit(
        build_model("lstm", MODELS["lstm"].config(), 2, {"vocab_size": len(imdb_small.vocab)}),
        inputs["train"],
        inputs["val"],
        cfg,
        resume=snapshots[2],
    )
    assert len(resumed.history) == 3
    assert resumed.history[2].val_loss == pytest.approx(straight.history[2].val_loss, abs=1e-6)


def test_a_trial_trained_to_its_end_is_exactly_that_seeds_retrain(imdb_small):
    """The retrain takes the search's trial of a configuration (its last checkpoint's snapshot) instead of
    training that seed again: the same best-epoch weights, history and predictions as the retrain's own
    training of it, and the trial's memory peak. Early stopping here, so the last epoch is not the best."""
    from search.core.settings import apply_params, load_settings
    from search.sweep.inputs import model_inputs
    from search.sweep.retrain import TrialRun, retrain

    over = {"train.lr": 1e-2, "train.max_epochs": 12, "train.patience": 2, "train.lr_patience": 5}
    settings = load_settings("lstm", over)
    inputs, info = model_inputs(settings, imdb_small, ("train", "val", "test"), None)
    cfg = apply_params(settings, {"train.threads": 1})  # as a trial on --cpus 1 trains it
    last = {}

    def keep(stats, snapshot, finished):
        last.update(copy.deepcopy(snapshot()), finished=finished)

    seed_everything(cfg.train.seed)
    model = build_model("lstm", cfg.model, 2, info)
    fit(model, inputs["train"], inputs["val"], cfg.train, on_epoch=keep, batching=entry("lstm").batching)
    assert last["finished"] and last["best_epoch"] < len(last["history"])
    trial = TrialRun("t1", cfg.train.seed, last, peak_rss_mb=123.0)
    texts = imdb_small.test.clean_texts
    reused, reused_p = retrain(settings, inputs, info, 2, [42, 43], 1, texts, trained=trial)
    fresh, fresh_p = retrain(settings, inputs, info, 2, [42, 43], 1, texts)
    for split in ("val", "test"):
        np.testing.assert_array_equal(reused_p[split].probs, fresh_p[split].probs)
    for mine, theirs in zip(reused.seeds, fresh.seeds):
        assert [h.val_loss for h in mine.history] == [h.val_loss for h in theirs.history]
        assert (mine.test, mine.best_epoch, mine.best_val_loss) == (
            theirs.test,
            theirs.best_epoch,
            theirs.best_val_loss,
        )
    assert reused.seeds[0].peak_rss_mb == 123.0 and reused.seeds[1].peak_rss_mb != 123.0


class Exploding(nn.Module):
    def __init__(self):
        super().__init__()
        self.w = nn.Parameter(torch.ones(1))

    def forward(self, batch):
        return self.w * torch.full((len(batch["features"]), 2), float("nan"))


def test_nan_loss_is_reported_as_divergence():
    data = {"features": torch.zeros(8, 3), "labels": torch.zeros(8, dtype=torch.int64)}
    with pytest.raises(TrainingDiverged, match="loss is nan at epoch 1"):
        fit(Exploding(), data, data, TrainConfig(max_epochs=2))


def test_bucketed_batches_cover_every_row_once_and_trim_padding():
    lengths = torch.randint(1, 64, (500,))
    data = {
        "ids": torch.arange(500).unsqueeze(1).repeat(1, 64),
        "lengths": lengths,
        "labels": torch.arange(500),
    }
    seen = []
    generator = torch.Generator().manual_seed(0)
    for b in batches(data, 16, shuffle=True, generator=generator, bucket=True, batching=VOCAB_BATCHING):
        assert b["ids"].shape[1] == int(b["lengths"].max())
        seen += b["labels"].tolist()
    assert sorted(seen) == list(range(500))


def test_predict_keeps_row_order_with_length_sorting(imdb_small):
    inputs, _ = entry("lstm").inputs(None, imdb_small)
    model = build_model("lstm", MODELS["lstm"].config(), 2, {"vocab_size": len(imdb_small.vocab)})
    whole = predict(model, inputs["val"], batch_size=1000)
    one_by_one = torch.cat(
        [predict(model, {k: v[i : i + 1] for k, v in inputs["val"].items()}) for i in range(10)]
    )
    assert torch.allclose(whole[:10], one_by_one, atol=1e-5)


def test_metrics_binary_and_macro():
    binary = metrics(np.array([0, 1, 1, 0]), np.array([0, 1, 0, 0]), 2)
    assert binary["accuracy"] == 0.75 and binary["precision"] == 1.0 and binary["recall"] == 0.5
    assert binary["confusion"] == [[2, 0], [1, 1]]
    macro = metrics(np.array([0, 1, 2, 2]), np.array([0, 1, 2, 1]), 3)
    assert macro["recall"] == pytest.approx((1 + 1 + 0.5) / 3)
