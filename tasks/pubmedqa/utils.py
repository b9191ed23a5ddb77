"""Prompt and scoring hooks for the PubMedQA tasks (prompts in medbench.tasks.prompts, grading in scoring)."""

from medbench.tasks import prompts, scoring
from medbench.tasks.registry import get_task


def doc_to_text(doc: dict) -> str:
    return prompts.pubmedqa_user_prompt(doc["CONTEXTS"], doc["QUESTION"])


def doc_to_text_ll(doc: dict) -> str:
    return prompts.pubmedqa_ll_prompt(doc["CONTEXTS"], doc["QUESTION"])


def doc_to_choice_ll(doc: dict) -> list[str]:
    return scoring.ll_choices(get_task("medbench_pubmedqa_ll"), doc)


process_results = scoring.process_results_for("medbench_pubmedqa")
process_results_ll = scoring.process_results_for("medbench_pubmedqa_ll")
