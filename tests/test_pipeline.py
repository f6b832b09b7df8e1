import pytest
import torch

from configs.errors import UserError
from data_pipeline import DataConfig, prepare
from data_pipeline.prepare import build, build_vocab, cache_key, cache_root, drop_leaks, encode, format_report
from data_pipeline.sources import RawDataset
from data_pipeline.text import process


def rows(texts, label=0):
    return [process(t, True) + (label,) for t in texts]


def test_seed_leak_example_is_dropped_from_val_and_train_is_kept():
    processed = {
        "train": rows(["The neural network is amazing!!!", "Deep models learn features"]),
        "val": rows(["The NEURAL network is AMAZING", "Totally different sentence here"]),
        "test": rows(["Deep models learn features", "Another unseen sentence"]),
    }
    report = {"splits": {s: {} for s in processed}}
    drop_leaks(processed, report)
    assert [r[1] for r in processed["train"]] == ["neural network amazing", "deep models learn features"]
    assert [r[1] for r in processed["val"]] == ["totally different sentence"]
    assert [r[1] for r in processed["test"]] == ["another unseen sentence"]
    assert report["splits"]["val"]["leaked_dropped"] == 1 and report["splits"]["test"]["leaked_dropped"] == 1


def made_dataset(n=200, duplicates=20, empties=10):
    texts = [f"review number {i} says word{i % 7} and thing{i}" for i in range(n - duplicates - empties)]
    texts += ["The neural network is amazing!!!"] * (duplicates // 2) + ["The NEURAL network is AMAZING"] * (
        duplicates // 2
    )
    texts += ["!!! ### @@@ ---"] * empties
    labels = [i % 2 for i in range(n)]
    return RawDataset("made", texts, labels, ["a", "b"], "file")


def test_build_counts_every_step_and_leaves_no_overlap():
    data = build(made_dataset(), DataConfig(dataset="made", train_size=120, val_size=40, test_size=40))
    splits = data.report["splits"]
    for name in ("train", "val", "test"):
        s = splits[name]
        assert (
            s["sampled"] - s["empty_dropped"] - s["leaked_dropped"] == s["final"] == len(getattr(data, name))
        )
    assert sum(s["empty_dropped"] for s in splits.values()) == 10
    assert splits["val"]["leaked_dropped"] + splits["test"]["leaked_dropped"] > 0
    texts = {n: set(getattr(data, n).texts) for n in ("train", "val", "test")}
    assert not (
        texts["train"] & texts["val"] or texts["train"] & texts["test"] or texts["val"] & texts["test"]
    )
    assert all(t for n in texts for t in texts[n])


def test_split_is_stratified_seeded_and_sized(imdb_small):
    report = imdb_small.report
    assert [report["splits"][s]["sampled"] for s in ("train", "val", "test")] == [300, 100, 100]
    assert report["splits"]["train"]["class_counts"] == [150, 150]
    again = build(*_imdb_raw_and_cfg())
    assert again.train.texts == imdb_small.train.texts


def _imdb_raw_and_cfg():
    from data_pipeline.sources import load_source

    cfg = DataConfig(dataset="imdb", train_size=300, val_size=100, test_size=100)
    return load_source(cfg), cfg


def test_vocabulary_comes_from_train_only(imdb_small):
    train_words = {w for t in imdb_small.train.texts for w in t.split()}
    assert set(imdb_small.vocab[2:]) <= train_words
    assert imdb_small.vocab[:2] == ["<PAD>", "<UNK>"]
    assert 0 < imdb_small.report["val_coverage"] < 1


def test_encode_pads_truncates_and_marks_unknown():
    vocab = build_vocab(["good good film", "bad film"], 10)
    split = encode([("", "good film unseen", 1), ("", "bad " * 80, 0)], vocab, max_len=64)
    assert split.ids.shape == (2, 64)
    assert split.lengths.tolist() == [3, 64]
    assert split.ids[0, :4].tolist() == [vocab.index("good"), vocab.index("film"), 1, 0]


def test_tail_truncation_keeps_the_end():
    vocab = build_vocab(["alpha beta gamma delta"], 10)
    split = encode([("", "alpha beta gamma delta", 1)], vocab, max_len=2, mode="tail")
    assert split.ids[0].tolist() == [vocab.index("gamma"), vocab.index("delta")]


def test_head_and_tail_truncation_keeps_both_halves():
    vocab = build_vocab(["a1 a2 a3 a4 a5 a6 a7"], 10)
    split = encode([("", "a1 a2 a3 a4 a5 a6 a7", 1), ("", "a1 a2", 0)], vocab, max_len=5, mode="head+tail")
    assert [vocab[i] for i in split.ids[0].tolist()] == ["a1", "a2", "a5", "a6", "a7"]
    assert split.ids[1].tolist()[2:] == [0, 0, 0] and split.lengths.tolist() == [5, 2]


@pytest.mark.parametrize("truncate", ["head", "tail", "head+tail"])
@pytest.mark.parametrize("short", [63, 64, 128, 255])
def test_cutting_prepared_data_equals_preparing_at_that_length(truncate, short):
    long = prepare(DataConfig(train_size=300, val_size=100, test_size=100, truncate=truncate, max_len=256))
    direct = prepare(
        DataConfig(train_size=300, val_size=100, test_size=100, truncate=truncate, max_len=short)
    )
    cut = long.cut(short)
    assert cut.max_len == short and cut.truncate == direct.truncate == truncate
    for name in ("train", "val", "test"):
        assert torch.equal(getattr(cut, name).ids, getattr(direct, name).ids), name
        assert torch.equal(getattr(cut, name).lengths, getattr(direct, name).lengths), name
    assert (long.train.lengths > short).any()  # some texts were cut
    drop = ("cache",)  # where each came from
    assert {k: v for k, v in cut.report.items() if k not in drop} == {
        k: v for k, v in direct.report.items() if k not in drop
    }


def test_a_command_prepares_once_and_each_model_cuts_what_it_would_have_prepared():
    from search.core.settings import load_settings
    from search.sweep.inputs import check_one_dataset, command_data, data_for, prepare_for_sweep

    sizes = {"data.train_size": 300, "data.val_size": 100, "data.test_size": 100}
    short, long = load_settings("distilbert", sizes), load_settings("lstm", sizes)  # spaces: 64, up to 256
    check_one_dataset([short, long])
    data = command_data([short, long])
    assert data.max_len == 256 and prepare_for_sweep(short).max_len == 64
    for settings in (short, long):
        alone, cut = prepare_for_sweep(settings), data_for(settings, data)
        assert cut.key == alone.key and cut.max_len == alone.max_len  # an encoder's cache is found again
        assert torch.equal(cut.train.ids, alone.train.ids)
    other = load_settings("lstm", sizes | {"data.vocab_size": 500})
    with pytest.raises(UserError, match="lstm's settings give data.vocab_size other than distilbert's"):
        check_one_dataset([short, other])


def test_reviews_keep_their_end_and_topics_their_start(imdb_small):
    assert imdb_small.report["truncate"] == "tail"
    long_row = next(i for i, t in enumerate(imdb_small.train.texts) if len(t.split()) > 64)
    last = imdb_small.train.texts[long_row].split()[-1]
    expected = imdb_small.vocab.index(last) if last in imdb_small.vocab else 1  # 1 is <UNK>
    assert imdb_small.train.ids[long_row, 63].item() == expected


def test_cache_hit_and_new_entry_on_changed_setting(cache_dir):
    cfg = DataConfig(dataset="rotten_tomatoes", train_size=200, val_size=50, test_size=50)
    first = prepare(cfg)
    second = prepare(cfg)
    assert not first.report["cache"]["hit"] and second.report["cache"]["hit"]
    assert torch.equal(first.train.ids, second.train.ids) and first.vocab == second.vocab
    other = DataConfig(dataset="rotten_tomatoes", train_size=200, val_size=50, test_size=50, vocab_size=100)
    assert cache_key(other) != cache_key(cfg)
    assert not prepare(other).report["cache"]["hit"]
    assert len(prepare(other).vocab) == 102


def test_20newsgroups_from_local_archive(ng_archive):
    cfg = DataConfig(
        dataset="20newsgroups", data_path=str(ng_archive), train_size=300, val_size=100, test_size=100
    )
    data = prepare(cfg)
    assert data.name == "20newsgroups-stripped" and data.label_names == ["rest", "technical"]
    assert data.report["source_rows"] == 18846
    assert not data.report["keep_negations"] and data.report["truncate"] == "head"
    share = data.train.labels.float().mean().item()
    assert 0.40 < share < 0.50  # comp.* + sci.* are about 46% of the posts
    assert "From:" not in " ".join(data.train.clean_texts[:50])
    print(format_report(data.report))


def test_user_csv_with_string_labels(tmp_path):
    path = tmp_path / "reviews.csv"
    lines = ["body,sentiment"] + [
        f'"great movie number{i} loved it",pos' if i % 2 else f'"awful film number{i} hated it",neg'
        for i in range(60)
    ]
    path.write_text("\n".join(lines))
    data = prepare(
        DataConfig(
            dataset=str(path),
            text_column="body",
            label_column="sentiment",
            train_size=30,
            val_size=10,
            test_size=10,
        )
    )
    assert data.label_names == ["neg", "pos"] and data.num_classes == 2
    assert data.report["label_names"] == ["neg", "pos"]


@pytest.mark.parametrize("suffix", [".jsonl", ".parquet"])
def test_user_file_with_three_classes(tmp_path, suffix):
    import pandas as pd

    frame = pd.DataFrame(
        {
            "text": [f"sample text {['alpha', 'bravo', 'charlie'][i % 3]} item{i}" for i in range(90)],
            "label": [i % 3 for i in range(90)],
        }
    )
    path = tmp_path / f"three{suffix}"
    if suffix == ".jsonl":
        frame.to_json(path, orient="records", lines=True)
    else:
        frame.to_parquet(path)
    data = prepare(DataConfig(dataset=str(path), train_size=45, val_size=15, test_size=15))
    assert data.num_classes == 3 and data.label_names == ["0", "1", "2"]
    assert data.report["splits"]["val"]["class_counts"] == [5, 5, 5]


def test_failed_preparation_leaves_no_cache_entry(tmp_path, cache_dir):
    path = tmp_path / "empty_texts.csv"
    path.write_text("text,label\n" + "\n".join(f'"!!! ###",{i % 2}' for i in range(40)))
    cfg = DataConfig(dataset=str(path), train_size=20, val_size=10, test_size=10)
    with pytest.raises(UserError, match="empty after cleaning"):
        prepare(cfg)
    assert not (cache_root() / f"data-{cache_key(cfg)}.pt").exists()
    assert not list(cache_root().glob("*.tmp*"))
