"""medbench tasks: lm-eval task configs for medical benchmarks, and the graders that score them."""
