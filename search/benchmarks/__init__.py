"""Benchmarks (not tests): speed, memory and search behaviour on this machine, as a table of sections.

Each section is a function of a Context (sizes, data, encoder, archive) that returns its Markdown;
search.bench runs the sections asked for and writes BENCHMARKS.md. It may import anything below the commands.
"""

from search.benchmarks import (
    data,
    efficiency,
    encoder,
    importance,
    replay_sections,
    speed,
    stability,
    sweeps,
)
from search.benchmarks.common import FULL, QUICK, Context, Plan, bench_data, machine

# number: (what it needs besides the data, the section)
SECTIONS = {
    "1": ((), speed.epoch_times),
    "2": ((), speed.inference_rates),
    "3": ((), speed.peak_rss),
    "4": (("encoder",), encoder.frozen_encoder),
    "4b": (("encoder",), encoder.unfrozen_top_layer),
    "5": ((), sweeps.tune_overhead),
    "5b": ((), sweeps.parallel_trials),
    "6": ((), sweeps.asha_saving),
    "7": ((), data.preprocessing),
    "bank": ((), replay_sections.curve_bank),
    "trust": ((), replay_sections.replay_trust),
    "efficiency": ((), replay_sections.replayed_efficiency),
    "efficiency-real": ((), efficiency.search_efficiency),
    "defaults": ((), replay_sections.search_defaults),
    "driver-memory": ((), replay_sections.driver_memory),
    "importance": ((), importance.importance_trials),
    "stability": ((), stability.search_stability),
}

__all__ = ["FULL", "QUICK", "SECTIONS", "Context", "Plan", "bench_data", "machine"]
