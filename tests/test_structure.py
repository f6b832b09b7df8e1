"""The shape of the code: dependencies run one way, each default is written once, and a new architecture
is one module, one registry line and one YAML, with nothing to change in search/."""

import ast
import dataclasses
import io
import itertools
import json
import os
import re
import shutil
import subprocess
import sys
import textwrap
import tokenize
from pathlib import Path

import pytest
import yaml

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("configs", "data_pipeline", "models", "search")
# Bottom to top: a module may import from its own layer and the layers below, never from above. Siblings
# (a tuple) share a rank and import nothing of each other: the sweep writes the run directory, the analysis
# reads it, and the command (search.tune) calls the one and then the other.
LAYERS = (
    "configs",
    "data_pipeline",
    "models",
    "search.engine",
    "search.core",
    "search.store",
    ("search.sweep", "search.analysis"),
    "search.benchmarks",
    "search",  # the commands: search.train, .tune, .report, .predict, .bench; nothing imports them
)


def place(module: str) -> tuple[int, str]:
    """(rank, layer) of a dotted module name: its longest layer prefix, and that prefix's rank."""
    found = [
        (rank, name)
        for rank, names in enumerate(LAYERS)
        for name in ((names,) if isinstance(names, str) else names)
        if module == name or module.startswith(name + ".")
    ]
    return max(found, key=lambda f: len(f[1]))


def layer(module: str) -> int:
    return place(module)[0]


def module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(root: Path, path: Path) -> set[str]:
    """Dotted names of this project's modules that a file imports: lazy and relative imports included."""
    name = module_name(root, path)
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join(anchor + ([base] if base else []))
            found.add(base)
            found |= {
                f"{base}.{alias.name}"
                for alias in node.names
                if (root / base.replace(".", "/") / alias.name).exists()
                or (root / base.replace(".", "/") / f"{alias.name}.py").exists()
            }
    return {n for n in found if n.split(".")[0] in PACKAGES}


def modules(root: Path = ROOT):
    for package in PACKAGES:
        for path in sorted((root / package).rglob("*.py")):
            yield module_name(root, path), path


def violations(root: Path = ROOT) -> list[str]:
    out = []
    for name, path in modules(root):
        for imported in imports(root, path):
            (rank, own), (theirs, other) = place(name), place(imported)
            if theirs > rank:
                out.append(f"{name} imports {imported}, a layer above it")
            elif theirs == rank and other != own:
                out.append(f"{name} imports {imported}, a sibling layer")
            elif layer(imported) == len(LAYERS) - 1 and imported != "search" and imported != name:
                out.append(f"{name} imports the command {imported}")
    return out


def test_nothing_below_imports_from_above():
    assert violations() == []


def test_every_module_is_in_a_layer_and_sub_packages_are_seen():
    names = [name for name, _ in modules()]
    assert {
        "search.engine.loop",
        "search.store.layout",
        "search.sweep.tuner",
        "search.analysis.knobs",
    } <= set(names)
    assert all(layer(name) >= 0 for name in names)


@pytest.mark.parametrize(
    "where,line",
    [
        ("search/engine/loop.py", "from search.sweep.tuner import run_search"),
        ("search/engine/memory.py", "from ..sweep import tuner"),
        ("search/store/files.py", "from . import layout\nfrom ..analysis.knobs import analyse"),
        ("models/batching.py", "import search.core.settings"),
        ("search/sweep/pipeline.py", "def f():\n    from search.report import main"),
        ("search/analysis/leaderboard.py", "from search.sweep.bundle import save_ensemble"),
        ("search/analysis/rows.py", "def f():\n    from ..sweep import bundle"),
        ("search/sweep/pipeline.py", "from search.analysis.rows import gather"),
    ],
    ids=[
        "absolute",
        "relative",
        "relative in a sub-package",
        "plain import",
        "a command, lazily",
        "analysis from sweep",
        "analysis from sweep, relative and lazily",
        "sweep from analysis",
    ],
)
def test_a_planted_upward_import_is_caught(tmp_path, where, line):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    assert violations(tmp_path) == []
    target = tmp_path / where
    target.write_text(target.read_text() + "\n" + line + "\n")
    assert violations(tmp_path), line


def test_models_and_data_never_import_search():
    offenders = [
        (name, imp)
        for name, path in modules()
        if name.startswith(("models", "data_pipeline", "configs"))
        for imp in imports(ROOT, path)
        if imp.startswith("search")
    ]
    assert offenders == []


def spelled_file_names(root: Path = ROOT) -> list[str]:
    """Run-directory file names that a module outside search/store spells in code (docstrings may name
    them)."""
    from search.store.layout import FILE_NAMES

    out = []
    for name, path in modules(root):
        if name.startswith("search.store"):
            continue
        tree = ast.parse(path.read_text())
        docstrings = {
            id(node.body[0].value)
            for node in ast.walk(tree)
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef))
            and node.body
            and isinstance(node.body[0], ast.Expr)
            and isinstance(node.body[0].value, ast.Constant)
        }
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in docstrings:
                out += [f"{name}:{node.lineno} {file!r}" for file in FILE_NAMES if file in node.value]
    return out


def test_only_the_run_directory_spells_its_file_names(tmp_path):
    assert spelled_file_names() == []
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    report = tmp_path / "search" / "report.py"
    report.write_text(report.read_text() + '\nLEGACY = Path("runs") / "imdb" / "lstm" / "summary.json"\n')
    assert spelled_file_names(tmp_path) == [
        "search.report:" + str(len(report.read_text().splitlines())) + " 'summary.json'"
    ]


@pytest.mark.parametrize("model", ["rnn", "lstm", "transformer", "distilbert"])
def test_shipped_yaml_repeats_no_default(model):
    from data_pipeline.config import DataConfig
    from models import entry
    from search.core.settings import SearchConfig
    from search.engine import TrainConfig

    classes = {"data": DataConfig, "model": entry(model).config, "train": TrainConfig, "search": SearchConfig}
    for name in ("data", model):
        loaded = yaml.safe_load((ROOT / "configs" / f"{name}.yaml").read_text())
        for section, values in loaded.items():
            defaults = {f.name: f.default for f in dataclasses.fields(classes[section])}
            for key, value in (values or {}).items():
                assert key == "space" or value != defaults[key], (
                    f"configs/{name}.yaml repeats {section}.{key}"
                )


# A fifth architecture, registered by its own module and nowhere else: a bag of embeddings. It reads inputs of
# its own (keys "tokens" and "n", which nothing in search/ knows), says how to batch them, has a knob that
# changes them (model.half: only each text's first half), and says in which order the sweep builds them.
PLUGIN = """
import os
from dataclasses import dataclass

import torch
from torch import nn

from configs.typed import check_range
from models import Entry, register
from models.batching import Batching


@dataclass
class BagConfig:
    embed_dim: int = 16
    half: bool = False

    def validate(self):
        check_range(self, "model", embed_dim=(1, None, True))


def bag_inputs(cfg, data, splits=("train", "val"), cache_dir=None):
    with open(os.environ["BAG_LOG"], "a") as log:
        log.write(f"{cfg.half}\\n")
    out = {}
    for name in splits:
        split = getattr(data, name)
        n = (split.lengths + 1) // 2 if cfg.half else split.lengths
        keep = torch.arange(split.ids.size(1))[None, :] < n[:, None]
        out[name] = {"tokens": split.ids * keep, "n": n, "labels": split.labels}
    return out, {"vocab_size": len(data.vocab)}


class Bag(nn.Module):
    def __init__(self, cfg, vocab_size, num_classes):
        super().__init__()
        self.embed = nn.EmbeddingBag(vocab_size, cfg.embed_dim, mode="mean", padding_idx=0)
        self.head = nn.Linear(cfg.embed_dim, num_classes)

    def forward(self, batch):
        # the training loop cut the batch to its longest text, as this model's entry asked
        assert batch["tokens"].size(1) == max(1, int(batch["n"].max())), "padding was not trimmed"
        return self.head(self.embed(batch["tokens"]))


register(
    "bag",
    Entry(
        BagConfig,
        lambda cfg, k, info: Bag(cfg, info["vocab_size"], k),
        bag_inputs,
        input_keys=("model.half",),
        batching=Batching(lengths=lambda data: data["n"], padded=("tokens",)),
        build_order=lambda cfg: not cfg.half,  # the halves first
    ),
)
"""
DRIVER = """
import sys
import bag_model  # registers "bag"
from search.tune import main
main(sys.argv[1:])
"""


def test_a_fifth_model_registered_outside_the_package_sweeps_end_to_end(tmp_path):
    from search.store.layout import RunDir

    (tmp_path / "bag_model.py").write_text(textwrap.dedent(PLUGIN))
    (tmp_path / "driver.py").write_text(textwrap.dedent(DRIVER))
    (tmp_path / "bag.yaml").write_text(
        "train: {max_epochs: 10}\nsearch:\n  space:\n"
        "    model.embed_dim: {choice: [8, 16]}\n"
        "    model.half: {choice: [false, true]}\n"
        "    train.lr: {loguniform: [1.0e-2, 5.0e-2]}\n"
    )
    runs, log = tmp_path / "runs", tmp_path / "inputs.log"
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path), str(ROOT)]), "BAG_LOG": str(log)}
    argv = [
        "--model",
        "bag",
        "--config",
        str(tmp_path / "bag.yaml"),
        "--runs-dir",
        str(runs),
        "--trials",
        "3",
    ]
    argv += ["--seeds", "1", "--train-size", "300", "--val-size", "100", "--test-size", "100", "--cpus", "1"]
    proc = subprocess.run(
        [sys.executable, str(tmp_path / "driver.py"), *argv, "--json", "--no-plots"],
        capture_output=True,
        text=True,
        env=env,
        timeout=400,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    run = RunDir(runs / "imdb-300-100-100")  # the default name says the sizes are not the default ones
    summary = run.model("bag").read_summary()
    assert summary.trials.total == 3 and summary.trials.failed == 0
    assert summary.best_params["model.embed_dim"] in (8, 16)
    # The sweep built both input variants, in the order the entry asked for, before the search.
    assert log.read_text().split()[:2] == ["True", "False"]
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert 0.5 < result["models"]["bag"]["test_mean"]["accuracy"] <= 1.0
    assert "| bag " in (run.root / run.LEADERBOARD_MD).read_text()


def test_no_line_is_longer_than_110_characters():
    long = [
        f"{path.relative_to(ROOT)}:{n}"
        for package in (*PACKAGES, "tests")
        for path in (ROOT / package).rglob("*.py")
        for n, line in enumerate(path.read_text().splitlines(), 1)
        if len(line) > 110
    ]
    assert long == []


# Text broken mid-sentence by a re-wrap: a piece of a string that is only a word or two, continued by the next
# piece (f"... so " f"ask " "for fewer"); a docstring or comment line of one or two lowercase words between
# two lines of the same text ("... the model" / "on" / "disk for ..."). A last piece may be short: it ends.
SHORT_PIECE = 16  # characters, trimmed: "those", "run the", "sweet spot: the"
# Words only: no placeholder, no escape (a piece that ends in \n is a line of its own, by design).
WORDS = re.compile(r"[\w ,.;:()'-]+")
LONE = re.compile(r"[a-z][a-z'-]*( [a-z][a-z'-]*)?")  # one or two lowercase words, nothing after them


def literal_runs(source: str) -> list[list[tuple[int, str]]]:
    """Each implicit concatenation of string literals (two or more, line breaks and comments between them),
    as (line, the literal's source) per piece."""
    starts = [0, *itertools.accumulate(len(line) for line in source.splitlines(keepends=True))]

    def text(start, end) -> str:
        return source[starts[start[0] - 1] + start[1] : starts[end[0] - 1] + end[1]]

    runs, run, depth, opened = [], [], 0, None
    for tok in tokenize.generate_tokens(io.StringIO(source).readline):
        kind = tokenize.tok_name[tok.type]
        if kind in ("FSTRING_START", "FSTRING_MIDDLE", "FSTRING_END") or depth:  # 3.12: one f-string, many
            depth += (kind == "FSTRING_START") - (kind == "FSTRING_END")
            opened = opened or tok.start
            if depth == 0:
                run.append((opened[0], text(opened, tok.end)))
                opened = None
        elif kind == "STRING":
            run.append((tok.start[0], tok.string))
        elif kind not in ("NL", "COMMENT"):  # anything else ends the concatenation
            if len(run) > 1:
                runs.append(run)
            run = []
    return runs


def broken_strings(root: Path = ROOT) -> list[str]:
    out = []
    for _, path in modules(root):
        for run in literal_runs(path.read_text()):
            for line, literal in run[:-1]:
                quote = re.match(r"[a-zA-Z]*('''|\"\"\"|'|\")", literal)
                body = literal[quote.end() : len(literal) - len(quote.group(1))].strip()
                if len(body) <= SHORT_PIECE and WORDS.fullmatch(body):
                    out.append(f"{path.relative_to(root)}:{line} {literal}")
    return out


def lone_lines(lines: list[str]) -> list[int]:
    """Indexes of the lines of one or two lowercase words with text on both sides."""
    return [
        i
        for i in range(1, len(lines) - 1)
        if LONE.fullmatch(lines[i].strip()) and lines[i - 1].strip() and lines[i + 1].strip()
    ]


def broken_lines(root: Path = ROOT) -> list[str]:
    out = []
    for _, path in modules(root):
        source, where = path.read_text(), path.relative_to(root)
        for node in ast.walk(ast.parse(source)):
            if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
                lines = (ast.get_docstring(node, clean=False) or "").splitlines()
                out += [f"{where}:{node.body[0].lineno + i} {lines[i].strip()!r}" for i in lone_lines(lines)]
        # Comments alone on their lines; any other line stands between blocks as a blank one.
        comments = [""] * (source.count("\n") + 2)
        for tok in tokenize.generate_tokens(io.StringIO(source).readline):
            if tok.type == tokenize.COMMENT and tok.line.lstrip().startswith("#"):
                comments[tok.start[0]] = tok.string.lstrip("#")
        out += [f"{where}:{n} {comments[n].strip()!r}" for n in lone_lines(comments)]
    return out


def test_no_text_is_broken_mid_sentence():
    assert broken_strings() + broken_lines() == []


BROKEN = '''

def f(n):
    """A trial that asks for more CPUs than a node has would wait forever, so
    ask
    for fewer."""
    # a comment that a re-wrap cut in the middle of
    # the
    # sentence
    return f"--cpus {n} is more than any node has, so " f"ask " "for fewer"
'''


def test_text_broken_mid_sentence_is_caught(tmp_path):
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tmp_path / package, ignore=shutil.ignore_patterns("__pycache__"))
    target = tmp_path / "search" / "report.py"
    n = len(target.read_text().splitlines())
    target.write_text(target.read_text() + BROKEN)
    assert broken_strings(tmp_path) == [f'search/report.py:{n + 10} f"ask "']
    assert broken_lines(tmp_path) == [f"search/report.py:{n + 5} 'ask'", f"search/report.py:{n + 8} 'the'"]


def test_files_and_functions_read_in_one_sitting():
    """No source file over 400 lines and no function over 70: a newcomer reads each top to bottom."""
    long_files, long_functions = [], []
    for name, path in modules():
        source = path.read_text()
        if len(source.splitlines()) > 400:
            long_files.append(name)
        for node in ast.walk(ast.parse(source)):
            if (
                isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef))
                and node.end_lineno - node.lineno >= 70
            ):
                long_functions.append(f"{name}.{node.name}: {node.end_lineno - node.lineno + 1} lines")
    assert long_files == [] and long_functions == []


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


def test_a_byte_size_is_parsed_only_where_settings_are_built():
    """The memory budget is parsed once, when the settings are validated; everything after reads
    settings.search.budget_bytes (issue 29: it was parsed in five places)."""
    calls = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.Call):
                    name = getattr(node.func, "id", None) or getattr(node.func, "attr", None)
                    if name == "parse_bytes":
                        calls.append(f"{path.relative_to(ROOT)}:{node.lineno}")
    assert calls and all(call.startswith("search/core/settings.py:") for call in calls), calls


def module_level_instances() -> dict[str, set[str]]:
    """{module: names bound at its top level to an instance of a class the project defines}."""
    trees = {
        ".".join(path.relative_to(ROOT).with_suffix("").parts): ast.parse(path.read_text())
        for package in PACKAGES
        for path in (ROOT / package).rglob("*.py")
    }
    classes = {
        n.name
        for tree in trees.values()
        for n in ast.walk(tree)
        if isinstance(n, ast.ClassDef) and not any("frozen=True" in ast.unparse(d) for d in n.decorator_list)
    }  # a frozen dataclass's instance is a constant: it may be shared
    out = {}
    for module, tree in trees.items():
        for node in tree.body:
            if isinstance(node, ast.Assign) and isinstance(node.value, ast.Call):
                callee = getattr(node.value.func, "id", None) or getattr(node.value.func, "attr", None)
                if callee in classes:
                    out.setdefault(module, set()).update(
                        t.id for t in node.targets if isinstance(t, ast.Name)
                    )
    return out


def test_no_module_level_state_is_shared_with_another_module():
    """No hidden channels (issue 29): an object with state made at a module's top level (a gate, the signal
    state) is never imported by another module, where it could be read and changed unseen; such objects are
    made by a command and passed down."""
    instances = module_level_instances()
    shared = []
    for package in PACKAGES:
        for path in (ROOT / package).rglob("*.py"):
            for node in ast.walk(ast.parse(path.read_text())):
                if isinstance(node, ast.ImportFrom) and node.module in instances:
                    shared += [
                        f"{path.relative_to(ROOT)} imports {node.module}.{a.name}"
                        for a in node.names
                        if a.name in instances[node.module]
                    ]
    assert shared == []
