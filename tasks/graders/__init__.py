"""medbench graders: pure functions from a raw completion to a :class:`GradeRecord`.

Public API::

    from medbench.tasks.graders import grade, GradeRecord, JudgeVerdict

    rec = grade(completion, "yes", layout="xml", answer="yesno", hit_token_limit=False)
    rec.outcome           # "correct" | "wrong" | "unparseable": the answer region's one answer (or none)
    rec.strict_correct    # right answer given exactly in the asked layout
    rec.flexible_outcome  # the answer wherever the completion committed to it (reasoning, plain text)
    rec.format_strict, rec.format_soft, rec.unclosed_tag, rec.truncated, rec.reasoning_words

The GRPO rewards in ``medbench.trainers.rewards`` are thin adapters over these same functions.
"""

from .answers import (
    DEFAULT_LETTERS,
    AnswerType,
    FreeText,
    LetterChoice,
    Number,
    Reading,
    YesNoMaybe,
    answer_type,
)
from .grade import Judge, Layout, as_text, grade, measured_texts, parse_layout, region_answer
from .layouts import LayoutParse, parse_think, parse_xml, xml_tag_score
from .record import OUTCOMES, GradeRecord, JudgeVerdict, Outcome

__all__ = [
    "DEFAULT_LETTERS",
    "OUTCOMES",
    "AnswerType",
    "FreeText",
    "GradeRecord",
    "Judge",
    "JudgeVerdict",
    "Layout",
    "LayoutParse",
    "LetterChoice",
    "Number",
    "Outcome",
    "Reading",
    "YesNoMaybe",
    "answer_type",
    "as_text",
    "grade",
    "measured_texts",
    "parse_layout",
    "parse_think",
    "parse_xml",
    "region_answer",
    "xml_tag_score",
]
