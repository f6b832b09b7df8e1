"""Search: the training engine, Ray Tune sweeps, retraining and the leaderboard."""
