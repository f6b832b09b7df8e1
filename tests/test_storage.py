"""search.sweep.storage without a cluster: where trials go, what a finished sweep keeps, and bad storage."""

import pytest

from configs.errors import UserError
from search.store.layout import STORAGE_MARKER as MARKER
from search.sweep.storage import join, tidy, write_marker


def test_tidy_keeps_known_trials_results_and_drops_checkpoints_and_orphans(tmp_path):
    experiment = tmp_path / "lstm"
    for trial in ("known", "orphan"):
        (experiment / trial / "checkpoint_000001").mkdir(parents=True)
        (experiment / trial / "result.json").write_text("{}\n")
    (experiment / "experiment_state-2026.json").write_text("{}")  # Ray's own files stay
    (experiment / "not-a-trial").mkdir()  # a folder without results is not a trial: left alone
    tidy(str(experiment), {"known"})
    assert (experiment / "known" / "result.json").is_file()
    assert not (experiment / "known" / "checkpoint_000001").exists()
    assert not (experiment / "orphan").exists()
    assert (experiment / "experiment_state-2026.json").is_file() and (experiment / "not-a-trial").is_dir()


def test_a_marker_is_written_and_read_back(tmp_path):
    token = write_marker(str(tmp_path / "shared"))
    assert (tmp_path / "shared" / MARKER).read_text() == token
    assert join("s3://bucket/prefix/", "imdb", "lstm") == "s3://bucket/prefix/imdb/lstm"
    assert join(str(tmp_path), "imdb") == str(tmp_path / "imdb")


@pytest.mark.parametrize(
    "storage,expected",
    [("nosuch://bucket/x", "cannot open it"), ("{tmp}/file/sub", "cannot write there")],
    ids=["unknown scheme", "under a file"],
)
def test_storage_that_cannot_be_used_is_one_clear_error(storage, expected, tmp_path):
    (tmp_path / "file").write_text("a file, not a folder")
    with pytest.raises(UserError, match=expected):
        write_marker(storage.format(tmp=tmp_path))
