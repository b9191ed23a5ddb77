"""Prompt and scoring hooks for the Health_Benchmarks subtasks (one per specialty, one shared rule)."""

from medbench.tasks import prompts, scoring
from medbench.tasks.loaders import health_task_name


def doc_to_text(doc: dict) -> str:
    """The GRPO recipe's Health_Benchmarks user turn (options are already inline in ``Questions``)."""
    return prompts.choice_user_prompt(doc["Questions"])


def process_results(doc: dict, results: list) -> dict:
    return scoring.process_results_for(health_task_name(doc["specialty"]))(doc, results)
