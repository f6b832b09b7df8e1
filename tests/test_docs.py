"""The docs promise what the tool does: every flag README.md and docs/ name is a flag of a command, every
file of the run directory they list is a name the run directory's owner spells, and every leaderboard.json
key they name is in a real one."""

import argparse
import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
DOCS = [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]
# Flags the docs name that belong to other programs
OTHERS = {"--port", "--head", "--no-deps", "--durations", "--help"}


def documented(pattern: str) -> dict[str, list[str]]:
    """{match: [the doc files that name it]} over README.md and docs/."""
    found: dict[str, list[str]] = {}
    for path in DOCS:
        for match in set(re.findall(pattern, path.read_text())):
            found.setdefault(match, []).append(path.name)
    return found


def command_flags(monkeypatch) -> set[str]:
    """Every option string of every command's argument parser (its subcommands' too), read from the parsers
    themselves: each command is started with parsing stopped at once."""
    from search import bank, bench, predict, report, train, tune

    parsers = []

    def caught(self, args=None, namespace=None):
        parsers.append(self)
        raise SystemExit(0)

    monkeypatch.setattr(argparse.ArgumentParser, "parse_known_args", caught)
    for module in (train, tune, report, predict, bench, bank):
        with pytest.raises(SystemExit):
            module.main([])
    flags = set()
    while parsers:
        parser = parsers.pop()
        for action in parser._actions:
            flags |= {o for o in action.option_strings if o.startswith("--")}
            if isinstance(action, argparse._SubParsersAction):
                parsers += list(action.choices.values())
    return flags


def test_every_documented_flag_is_a_flag_of_a_command(monkeypatch):
    flags = command_flags(monkeypatch)
    missing = {
        flag: where
        for flag, where in documented(r"(?<![\w-])--[a-z][a-z0-9-]*").items()
        if flag not in flags | OTHERS
    }
    assert missing == {}, f"flags the docs name that no command has: {missing}"


def test_every_file_the_docs_list_in_the_run_directory_is_spelled_by_its_owner():
    from search.store import layout

    spelled = set()
    for path in (ROOT / "search" / "store").glob("*.py"):  # the run directory's owner: its string constants
        tree = ast.parse(path.read_text())
        spelled |= {
            n.value for n in ast.walk(tree) if isinstance(n, ast.Constant) and isinstance(n.value, str)
        }
    # patterns the owner builds: BundleDir.weights_name(seed), the lock's holder file (.lock + ".json")
    spelled |= {"weights-seed<S>.safetensors", layout.RunDir.LOCK + ".json"}
    section = (ROOT / "docs" / "usage.md").read_text().split("## The run directory", 1)[1]
    tree = section.split("```", 2)[1]
    names = re.findall(r"[\w.<>-]+\.(?:json|csv|md|db|yaml|html|npz|safetensors)", tree)
    assert names and all(n in spelled for n in names), [n for n in names if n not in spelled]
    assert layout.RunDir.BASELINE_DIR == "baseline" and "tfidf-logreg.safetensors" in names


def test_the_leaderboard_keys_the_docs_name_are_in_a_real_one(finished_sweep):
    board = finished_sweep.run.read_leaderboard()
    text = (ROOT / "docs" / "usage.md").read_text()
    paragraph = text.split("`leaderboard.json` holds", 1)[1].split("## Predict", 1)[0]
    named = set(re.findall(r"`(\w+)`", paragraph)) | set(re.findall(r'"(\w+)"', paragraph))
    model = next(m for m in board["models"] if m["model"] == "lstm")
    knob = board["analysis"]["lstm"]["knobs"][0]
    present = set(board) | set(model) | set(board["baseline"]) | set(knob)
    present |= set(model["vs_best"]) | set(model["vs_default"]) | set(model["test"])
    present |= set(board["analysis"]["lstm"]) | set(board["analysis"]["lstm"]["importance"])
    present |= set(board["ensemble"] or {}) | {"accuracy", "f1", "models", "baseline"}
    if board["analysis"]["lstm"]["importance"].get("note"):  # 5 trials: importance was not computed
        present |= {"refits"}
    missing = named - present
    assert missing == set(), f"leaderboard.json keys docs/usage.md names that a real one lacks: {missing}"


@pytest.mark.parametrize("flag", ["--export", "--split", "--memory-budget", "--seeds"])
def test_a_renamed_flag_would_be_caught(flag, monkeypatch):
    """The check above is not vacuous: these documented flags are found in the docs and in the commands."""
    assert flag in documented(r"(?<![\w-])--[a-z][a-z0-9-]*") and flag in command_flags(monkeypatch)
