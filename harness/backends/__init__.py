"""lm-eval backends: stock hf, medbench-fast (a slot-batched decoder over a Hugging Face model) and vLLM,
behind one build_lm() the runner calls."""
