"""Prompt and scoring hooks for the clinical chain-of-thought task."""

from medbench.tasks import prompts, scoring
from medbench.tasks.graders.layouts import THINK_OPEN


def doc_to_text(doc: dict) -> str:
    """The SFT recipe's inference prompt up to its final ``<think>``, which the YAML gives as ``gen_prefix``
    (plain-text rendering: prompt + gen_prefix == ``prompts.sft_inference_prompt`` exactly)."""
    text = prompts.sft_inference_prompt(doc["Question"])
    return text.removesuffix(THINK_OPEN)


process_results = scoring.process_results_for("medbench_medical_cot")
