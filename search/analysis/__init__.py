"""What a finished sweep says, computed from the run directory alone: the leaderboard (leaderboard.py,
tables.py), each model's knobs (knobs.py: importance, sweet spots, the train/val gap), the plots and
report.html.

It may import configs/, models/, search.engine, search.core and search.store; nothing of search.sweep, its
sibling: it reads what a sweep left on disk, and the sweep command saves the ensemble it chose.
"""
