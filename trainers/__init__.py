"""medbench trainers: the SFT and GRPO recipes, with rewards that are the benchmark graders."""
