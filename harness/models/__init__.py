"""Model preparation: SmolLM2-135M-Instruct as a local checkpoint (smollm2) and random-weight toys for unit tests
(tiny)."""
