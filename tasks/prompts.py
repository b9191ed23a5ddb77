"""The recipes' prompts, in one place.

The GRPO recipe (Qwen2.5-3B-Instruct on PubMedQA + GSM8K + Health_Benchmarks) asks for a
``<reasoning>/<answer>`` layout through its system prompt; the SFT recipe (DeepSeek-R1-Distill-Llama-8B on
medical-o1-reasoning-SFT) trains on a ``<think>`` template and, at inference, ends the prompt with an open
``<think>``. Tasks (for evaluation) and trainers (for training) both import these strings, so a prompt change
is one edit here plus a task-version bump.
"""

from __future__ import annotations

from .graders.answers import DEFAULT_LETTERS

#: The GRPO recipe's system prompt (verbatim, including its leading and trailing newlines).
SYSTEM_PROMPT = """
Respond in the following format:
<reasoning>
...
</reasoning>
<answer>
...
</answer>
"""

#: The GRPO recipe's one-shot layout reminder is not used: the system prompt alone defines the format.

#: The SFT recipe's prompt up to the response: the instruction and the question (``{question}``).
_SFT_HEAD = """Below is an instruction that describes a task, paired with an input that provides further context. 
Write a response that appropriately completes the request. 
Before answering, think carefully about the question and create a step-by-step chain of thoughts to ensure a logical and accurate response.

### Instruction:
You are a medical expert with advanced knowledge in clinical reasoning, diagnostics, and treatment planning. 
Please answer the following medical question. 

### Question:
{question}

### Response:
"""

#: The SFT recipe's inference prompt; ``{question}`` is filled in, and the prompt ends inside ``<think>``.
SFT_INFERENCE_PROMPT = _SFT_HEAD + "<think>"

#: The SFT recipe's training template: the question, then the chain of thought inside ``<think>``, then the
#: response. The trainer appends the tokenizer's EOS token.
SFT_TRAIN_PROMPT = _SFT_HEAD + "<think>\n{cot}\n</think>\n{response}"


def sft_inference_prompt(question: str) -> str:
    return SFT_INFERENCE_PROMPT.format(question=question)


def sft_training_text(question: str, cot: str, response: str, eos_token: str) -> str:
    return SFT_TRAIN_PROMPT.format(question=question, cot=cot, response=response) + eos_token


#: The recipe's showcase question (the Unsloth SFT notebook asks it before and after training).
CYSTOMETRY_QUESTION = (
    "A 61-year-old woman with a long history of involuntary urine loss during activities like coughing or "
    "sneezing but no leakage at night undergoes a gynecological exam and Q-tip test. Based on these findings, "
    "what would cystometry most likely reveal about her residual volume and detrusor contractions?"
)


# --- User turns for evaluation -----------------------------------------------------------------------------
# The GRPO recipe builds its user turns inline; they are kept here verbatim so the evaluation prompt is the
# training prompt. The multiple-choice exams the recipe does not train on (MedMCQA, MedQA, MMLU) reuse its
# Health_Benchmarks wording with the options listed under the question.


def pubmedqa_user_prompt(contexts: list[str], question: str) -> str:
    """The GRPO recipe's PubMedQA user turn (verbatim): the abstract's sections, then the question."""
    return (
        "Given the scientific context below:\n"
        + "\n".join(contexts)
        + "\n\nAnswer the following question:\n"
        + question
        + " with 'yes', 'no' or 'maybe'. You need to carefully review the context and reason before answering."
    )


def choice_user_prompt(question_block: str, letters: str = DEFAULT_LETTERS) -> str:
    """The GRPO recipe's Health_Benchmarks user turn (verbatim for A–D, including its leading blank lines).

    ``question_block`` is the question with its options (Health_Benchmarks has them inline already; see
    :func:`question_with_options` for datasets that keep them apart).
    """
    quoted = [f"'{letter}'" for letter in letters]
    listed = ", ".join(quoted[:-1]) + " or " + quoted[-1]
    return (
        "\n\nAnswer the following question:\n"
        + question_block
        + f"\n With {listed}. You need to carefully review the context and reason before answering."
    )


def question_with_options(question: str, choices: list[str], letters: str) -> str:
    """A question followed by one ``X. option`` line per choice (the layout MedMCQA and MedQA ship in)."""
    return question.strip() + "\n" + "\n".join(f"{letter}. {choice}" for letter, choice in zip(letters, choices))


def gsm8k_user_prompt(question: str) -> str:
    """The GRPO recipe's GSM8K user turn: the question alone (the system prompt asks for the layout)."""
    return question


def pubmedqa_ll_prompt(contexts: list[str], question: str) -> str:
    """lm-eval's own ``pubmedqa`` prompt (``lm_eval/tasks/pubmedqa/preprocess_pubmedqa.py``), scored by
    loglikelihood of `` yes`` / `` no`` / `` maybe``. Kept identical so ``medbench_pubmedqa_ll`` reproduces
    lm-eval's number exactly (tests/test_pubmedqa_ll_equality.py)."""
    return "Abstract: {}\nQuestion: {}\nAnswer:".format("\n".join(contexts), question)
