"""The shape of the code: dependencies run one way, each default is written once, and a new architecture
is one module, one registry line and one YAML, with nothing to change in search/."""

import ast
import dataclasses
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
LAYERS = ("configs", "data_pipeline", "models", "search")  # bottom to top
ENGINE = ("search.engine",)  # the training loop: below the rest of search/, above models/
COMMANDS = ("search.train", "search.tune", "search.report", "search.predict", "search.bench")


def our_imports(path: Path) -> set[str]:
    """Dotted names of this project's modules that a file imports, lazy imports included."""
    names = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.add(node.module)
    return {n for n in names if n.split(".")[0] in LAYERS}


def modules():
    for package in LAYERS:
        for path in sorted((ROOT / package).glob("*.py")):
            yield f"{package}.{path.stem}", path


@pytest.mark.parametrize("name,path", list(modules()), ids=lambda v: v if isinstance(v, str) else "")
def test_nothing_below_imports_from_above(name, path):
    rank = LAYERS.index(name.split(".")[0])
    for imported in our_imports(path):
        assert LAYERS.index(imported.split(".")[0]) <= rank, f"{name} imports {imported}, a layer above it"
        if name in ENGINE and imported.startswith("search"):
            assert imported in ENGINE, f"the engine imports {imported}"
        if imported in COMMANDS:
            assert name in COMMANDS and imported != "search.bench", f"{name} imports the command {imported}"


def test_models_and_data_never_import_search():
    offenders = [
        (name, imp)
        for name, path in modules()
        if name.startswith(("models", "data_pipeline", "configs"))
        for imp in our_imports(path)
        if imp.startswith("search")
    ]
    assert offenders == []


@pytest.mark.parametrize("model", ["rnn", "lstm", "transformer", "distilbert"])
def test_shipped_yaml_repeats_no_default(model):
    from data_pipeline.config import DataConfig
    from models import entry
    from search.engine import TrainConfig
    from search.settings import SearchConfig

    classes = {"data": DataConfig, "model": entry(model).config, "train": TrainConfig, "search": SearchConfig}
    for name in ("data", model):
        loaded = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
        for section, values in loaded.items():
            defaults = {f.name: f.default for f in dataclasses.fields(classes[section])}
            for key, value in (values or {}).items():
                assert key == "space" or value != defaults[key], (
                    f"configs/{name}.yaml repeats {section}.{key}"
                )


# A fifth architecture, registered by its own module and nowhere else: a bag of embeddings.
PLUGIN = """
from dataclasses import dataclass

import torch
from torch import nn

from configs.typed import check_range
from models import Entry, register
from models.inputs import vocab_inputs


@dataclass
class BagConfig:
    embed_dim: int = 16

    def validate(self):
        check_range(self, "model", embed_dim=(1, None, True))


class Bag(nn.Module):
    def __init__(self, cfg, vocab_size, num_classes):
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab_size, cfg.embed_dim, mode="mean", padding_idx=0)
        self.head = nn.Linear(cfg.embed_dim, num_classes)

    def forward(self, batch):
        return self.head(self.embed(batch["ids"]))


register("bag", Entry(BagConfig, lambda cfg, k, info: Bag(cfg, info["vocab_size"], k), vocab_inputs))
"""
DRIVER = """
import sys
import bag_model  # registers "bag"
from search.tune import main
main(sys.argv[1:])
"""


def test_a_fifth_model_registered_outside_the_package_sweeps_end_to_end(tmp_path):
    (tmp_path / "bag_model.py").write_text(textwrap.dedent(PLUGIN))
    (tmp_path / "driver.py").write_text(textwrap.dedent(DRIVER))
    (tmp_path / "bag.yaml").write_text(
        "train: {max_epochs: 3}\nsearch:\n  space:\n"
        "    model.embed_dim: {choice: [8, 16]}\n"
        "    train.lr: {loguniform: [1.0e-3, 1.0e-2]}\n"
    )
    runs = tmp_path / "runs"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)])}
    proc = subprocess.run(
        [
            sys.executable,
            str(tmp_path / "driver.py"),
            "--model",
            "bag",
            "--config",
            str(tmp_path / "bag.yaml"),
            "--runs-dir",
            str(runs),
            "--trials",
            "3",
            "--seeds",
            "1",
            "--train-size",
            "300",
            "--val-size",
            "100",
            "--test-size",
            "100",
            "--cpus",
            "1",
            "--json",
        ],
        capture_output=True,
        text=True,
        env=env,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    sweep = runs / "imdb-300-100-100"  # the default name says the sizes are not the default ones
    summary = json.loads((sweep / "bag" / "summary.json").read_text())
    assert summary["trials"]["total"] == 3 and summary["trials"]["failed"] == 0
    assert summary["best_params"]["model.embed_dim"] in (8, 16)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 0.5 < result["models"]["bag"]["test_mean"]["accuracy"] <= 1.0
    assert "| bag " in (sweep / "leaderboard.md").read_text()


def test_no_line_is_longer_than_110_characters():
    long = [
        f"{path.relative_to(ROOT)}:{n}"
        for package in (*LAYERS, "tests")
        for path in (ROOT / package).glob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if len(line) > 110
    ]
    assert long == []


def test_missing_test_data_fails_in_ci_and_skips_elsewhere(tmp_path):
    probe = tmp_path / "test_probe.py"
    probe.write_text(
        f"import sys\nsys.path.insert(0, {str(ROOT / 'tests')!r})\nfrom conftest import missing\n\n\n"
        "def test_probe():\n    missing('no archive here')\n"
    )
    for required, expected in (("1", "1 failed"), ("0", "1 skipped")):
        env = {**os.environ, "SWEETSPOT_REQUIRE_TEST_DATA": required}
        proc = subprocess.run(
            [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", str(probe)],
            capture_output=True,
            text=True,
            env=env,
            cwd=tmp_path,
            timeout=120,
        )
        assert expected in proc.stdout, proc.stdout[-2000:]
