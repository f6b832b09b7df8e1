"""What a finished sweep says, computed from the run directory alone: the leaderboard (leaderboard.py,
tables.py), each model's knobs (knobs.py: importance, sweet spots, the train/val gap), the plots and
report.html.

It may import configs/, models/, search.engine, search.core, search.store and search.sweep.
"""
