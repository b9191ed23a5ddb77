"""medbench harness: the CLI, benchmark runs, the run directory, statistics and the gate."""
