"""Prompt and scoring hooks for GSM8K (prompts in medbench.tasks.prompts, grading in scoring)."""

from medbench.tasks import prompts, scoring


def doc_to_text(doc: dict) -> str:
    return prompts.gsm8k_user_prompt(doc["question"])


process_results = scoring.process_results_for("medbench_gsm8k")
