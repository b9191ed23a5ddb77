"""Prompt and scoring hooks for the multiple-choice exams (MedMCQA, MedQA-USMLE, MMLU medical).

They are not in the GRPO recipe; they reuse its Health_Benchmarks user turn with the options listed under the
question, so one prompt and one grader serve every multiple-choice task.
"""

from medbench.tasks import prompts, scoring


def doc_to_text(doc: dict) -> str:
    block = prompts.question_with_options(doc["question"], doc["choices"], doc["letters"])
    return prompts.choice_user_prompt(block, doc["letters"])


process_medmcqa = scoring.process_results_for("medbench_medmcqa")
process_medqa = scoring.process_results_for("medbench_medqa")
process_mmlu_medical = scoring.process_results_for("medbench_mmlu_medical")
