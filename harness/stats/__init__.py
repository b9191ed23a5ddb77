"""Statistics: paired intervals and tests (paired) and the per-task / per-pair metrics of a run (metrics)."""
