"""A benchmark run: the spec, checkpoint resolution, the runner, the run directory, sample rows, the request
cache and progress. Imports tasks and the backends; never trainers or reports."""
