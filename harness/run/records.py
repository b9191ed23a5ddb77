"""The typed records of a run directory, and the one definition of the names they use.

Everything that crosses a folder boundary through the run directory is a frozen dataclass defined here:

=================== =================================================================================
record              where it is stored
=================== =================================================================================
CheckpointEntry     run.json ``checkpoints`` (one per evaluated checkpoint)
SampleRow           samples.parquet (one row per checkpoint × task × document; :data:`SAMPLE_COLUMNS`)
TaskMetrics         metrics.json ``per_task`` (checkpoint × task, and × subgroup)
GroupMetrics        metrics.json ``per_group`` (checkpoint × task group, pooled)
PairMetrics         metrics.json ``pairs`` (checkpoint against the reference, per task) and ``parent_pairs``
                    (checkpoint against its parent in the lineage, e.g. GRPO against SFT)
GroupPairMetrics    metrics.json ``group_pairs`` / ``parent_group_pairs`` (the same, pooled over a task group)
Methods             metrics.json ``methods`` (interval and test methods, the reference)
RunMetrics          metrics.json as a whole
GeneratedTokens     cache/<checkpoint>_rank<N>.generated.jsonl (what the backend counted per generation)
=================== =================================================================================

Each record also reads like the JSON object it is stored as (``rec["accuracy"]``, ``rec.get("subgroup")``,
``{**rec}``, and ``==`` against a plain dict), so code written against metrics.json's objects keeps working;
new code reads attributes. ``to_dict()`` gives the plain JSON form, ``from_dict()`` reads it back (a key an
older schema lacks reads as ``None``).

Also defined once here: the outcomes (:data:`OUTCOMES`), the lineage roles (:data:`ROLES`), the metric names
and what each means (:data:`METRICS`), and the length units (:data:`LENGTH_UNITS`, :func:`length_column`).
This module imports nothing heavy: the report reads it.

Schema history (:data:`SCHEMA_VERSION`, in run.json and metrics.json):

* **1** — the first layout.
* **2** — the graders' flexible reading, unclosed-tag flag and completion words become sample columns;
  ``completion_tokens`` is counted from the generated token ids where the backend knows them
  (``completion_tokens_source``) and ``truncated`` means "hit the token limit"; ``lenient_extracted``
  (always equal to ``extracted``) is gone. metrics.json gains ``length_unit`` (one unit for the whole run),
  ``flexible_accuracy``, ``unclosed_tag_rate`` and ``completion_tokens_mean``/``_median``; metrics that do
  not apply (format, truncation and lengths of a loglikelihood task) are ``null``. Version-1 directories
  still load (:data:`READABLE_SCHEMA_VERSIONS`): their missing keys and columns read as ``None``.
  Added within version 2 (absent in earlier version-2 files: read as ``None``, ``()`` or derived): pairs'
  ``mcnemar_p_adjusted`` (Holm across the file), ``significant`` and ``accuracy_proxy``; records'
  ``accuracy_proxy``; ``parent_pairs`` / ``parent_group_pairs``; methods' ``alpha``, ``multiplicity`` and
  ``decision``.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Literal, Self

from medbench.tasks.graders.record import OUTCOMES, Outcome
from medbench.tasks.provenance import ROLES

#: The run-directory schema this medbench writes.
SCHEMA_VERSION = 2
#: Schemas this medbench reads (older ones with their missing keys as ``None``).
READABLE_SCHEMA_VERSIONS: tuple[int, ...] = (1, 2)

__all__ = [
    "LENGTH_PARTS",
    "LENGTH_UNITS",
    "METRICS",
    "OUTCOMES",
    "OUTCOME_INDEX",
    "READABLE_SCHEMA_VERSIONS",
    "ROLES",
    "ROLE_ORDER",
    "SAMPLE_COLUMNS",
    "SCHEMA_VERSION",
    "CheckpointEntry",
    "GeneratedTokens",
    "GroupMetrics",
    "GroupPairMetrics",
    "JsonRecord",
    "LengthUnit",
    "Methods",
    "MetricDef",
    "Outcome",
    "PairMetrics",
    "RunMetrics",
    "SampleRow",
    "TaskMetrics",
    "is_proxy_judge",
    "length_column",
    "metric",
    "plain",
]

#: Position of each outcome in :data:`OUTCOMES` (the report's compact sample table codes outcomes by it).
OUTCOME_INDEX: dict[str, int] = {o: i for i, o in enumerate(OUTCOMES)}

#: Lineage position of each role (base → sft → grpo); checkpoints without a role sort after them.
ROLE_ORDER: dict[str, int] = {r: i for i, r in enumerate(ROLES)}

# -- lengths --------------------------------------------------------------------------------------------------

LengthUnit = Literal["tokens", "words"]
#: The units lengths are reported in. A run uses one for every length (metrics.json ``length_unit``):
#: "tokens" when every generated sample has its token counts (the evaluated model's tokenizer, or the
#: backend's generated ids), else "words", so a table, a figure and a gate never mix the two.
LENGTH_UNITS: tuple[LengthUnit, ...] = ("tokens", "words")
#: The parts of a completion whose length is measured.
LENGTH_PARTS: tuple[str, ...] = ("reasoning", "answer", "completion")


def length_column(part: str, unit: str) -> str:
    """The samples.parquet column holding ``part``'s length ("reasoning", "answer" or "completion") in
    ``unit`` ("tokens" or "words"): read a run's figure from the column its metrics were computed from."""
    if part not in LENGTH_PARTS:
        raise ValueError(f"unknown length part {part!r}; expected one of {LENGTH_PARTS}")
    if unit not in LENGTH_UNITS:
        raise ValueError(f"unknown length unit {unit!r}; expected one of {LENGTH_UNITS}")
    return f"{part}_{unit}"


# -- metric names -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class MetricDef:
    """One number of a :class:`TaskMetrics` record that a report shows and a gate can check."""

    name: str  #: the key in metrics.json
    kind: Literal["rate", "length"]  #: a share of documents, or a length summary (in the run's length_unit)
    #: For a rate: the per-document 0/1 indicator it is the mean of (``None`` = not applicable for a document);
    #: the gate tests the same indicators, so a rate means the same in metrics.json and in a verdict.
    indicator: str | None
    higher_is_better: bool
    #: Only generated text has it: ``None`` (JSON null) for a loglikelihood task, whose answer is chosen.
    generated_only: bool
    doc: str


#: Every metric a per-task record carries beside its counts, in report order. The one list: metrics.py
#: computes these, the gate's rules accept these names, the report and the terminal summary show them.
METRICS: tuple[MetricDef, ...] = (
    MetricDef("accuracy", "rate", "correct", True, False,
              "share correct by the primary reading: the layout's answer region only, lenient about case, "
              "whitespace and punctuation inside it (unparseable counts against it)"),
    MetricDef("flexible_accuracy", "rate", "flexible_correct", True, True,
              "share correct by the flexible reading: the primary answer, else one the completion commits "
              "to elsewhere (reasoning, a plain-text reply); reported beside accuracy, never folded into it"),
    MetricDef("strict_accuracy", "rate", "strict_correct", True, False,
              "share correct and given exactly as asked (a bare answer in the strictly followed layout)"),
    MetricDef("unparseable_rate", "rate", "unparseable", False, False,
              "share with no single readable answer in the answer region (its own outcome, not 'wrong')"),
    MetricDef("format_strict_rate", "rate", "format_strict", True, True,
              "share in the strict layout"),
    MetricDef("format_soft_rate", "rate", "format_soft", True, True,
              "share in the lenient layout"),
    MetricDef("think_ok_rate", "rate", "think_ok", True, True,
              "share with exactly one closed think block (think layouts only, else null)"),
    MetricDef("unclosed_tag_rate", "rate", "unclosed_tag", False, True,
              "share with a layout tag opened and never closed (a format fact, whatever stopped generation)"),
    MetricDef("truncation_rate", "rate", "truncated", False, True,
              "share that hit the token limit (counted from the generated token ids where the backend knows "
              "them, else from the completion's token count)"),
    MetricDef("judge_agreement", "rate", "judge_agree", True, False,
              "share of judged free-text answers the judge agreed with (null when no judge ran)"),
    MetricDef("reasoning_tokens_mean", "length", None, False, True, "mean reasoning length"),
    MetricDef("reasoning_tokens_median", "length", None, False, True, "median reasoning length"),
    MetricDef("reasoning_tokens_p90", "length", None, False, True, "90th percentile of reasoning length"),
    MetricDef("answer_tokens_mean", "length", None, False, True, "mean answer-region length"),
    MetricDef("completion_tokens_mean", "length", None, False, True,
              "mean length of the whole completion (a reply that ignores the layout still reasons)"),
    MetricDef("completion_tokens_median", "length", None, False, True, "median length of the whole completion"),
)
_METRICS_BY_NAME = {m.name: m for m in METRICS}


def metric(name: str) -> MetricDef:
    """The definition of one metric; unknown names fail with the list of known ones."""
    try:
        return _METRICS_BY_NAME[name]
    except KeyError:
        raise KeyError(f"unknown metric {name!r}; metrics: {', '.join(_METRICS_BY_NAME)}") from None


# -- the JSON-shaped record base ------------------------------------------------------------------------------

def _view(value: Any) -> Any:
    """A field value as the JSON object shows it: tuples as lists (records stay records)."""
    if isinstance(value, tuple):
        return [_view(v) for v in value]
    return value


def plain(value: Any) -> Any:
    """Records, tuples and numpy scalars → plain JSON values, all the way down."""
    if isinstance(value, JsonRecord):
        return value.to_dict()
    if isinstance(value, Mapping):
        return {k: plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [plain(v) for v in value]
    if hasattr(value, "item") and callable(value.item) and type(value).__module__ == "numpy":
        return value.item()
    return value


@functools.cache
def _keys_of(cls: type) -> tuple[str, ...]:
    names = [f.name for f in fields(cls) if f.name != "extra"]
    first = [n for n in cls._FIRST if n in names]
    return tuple(first + [n for n in names if n not in first])


class JsonRecord(Mapping[str, Any]):
    """Base of the records: a frozen dataclass that also reads as the JSON object it is stored as."""

    #: Keys the JSON form lists first (identity before numbers).
    _FIRST: ClassVar[tuple[str, ...]] = ()
    #: Keys a stored object must have (the rest of a record defaults to ``None`` when an older schema lacks it).
    _REQUIRED: ClassVar[tuple[str, ...]] = ()
    #: Fields stored as JSON lists and held as tuples.
    _TUPLES: ClassVar[frozenset[str]] = frozenset()
    #: Fields holding nested records: name -> record class (a tuple field holds a tuple of them).
    _NESTED: ClassVar[Mapping[str, type]] = {}

    __hash__ = None  # type: ignore[assignment]  # may hold lists and dicts

    @classmethod
    def json_keys(cls) -> tuple[str, ...]:
        """The keys of the JSON form, in order."""
        return _keys_of(cls)

    def __getitem__(self, key: str) -> Any:
        if key in _keys_of(type(self)):
            return _view(getattr(self, key))
        raise KeyError(key)

    def __iter__(self) -> Iterator[str]:
        return iter(_keys_of(type(self)))

    def __len__(self) -> int:
        return len(_keys_of(type(self)))

    def __eq__(self, other: object) -> bool:
        if isinstance(other, JsonRecord) and type(other) is not type(self):
            return False
        if isinstance(other, Mapping):
            return self.to_dict() == plain(other)
        return NotImplemented

    def to_dict(self) -> dict[str, Any]:
        """The plain JSON object (what the file holds)."""
        return {k: plain(self[k]) for k in self}

    @classmethod
    def from_dict(cls, data: Any, where: str = "") -> Self:
        """Read the JSON object back; ``where`` names the file for the error. Keys an older schema lacks read
        as ``None``; keys this version does not know are left out. Raises ValueError on a malformed object."""
        here = f"{where}: " if where else ""
        if not isinstance(data, Mapping):
            # ValueError like every other malformed-file problem: callers turn it into their file's error
            raise ValueError(f"{here}expected a JSON object for a {cls.__name__}, got {type(data).__name__}")  # noqa: TRY004
        missing = [k for k in cls._REQUIRED if k not in data]
        if missing:
            raise ValueError(f"{here}a {cls.__name__} object lacks {missing}; it has {sorted(map(str, data))}")
        kwargs: dict[str, Any] = {}
        for f in fields(cls):
            if f.name == "extra":
                continue
            if f.name in data:
                value = data[f.name]
                nested = cls._NESTED.get(f.name)
                if nested is not None and value is not None:
                    if f.name in cls._TUPLES:
                        if not isinstance(value, (list, tuple)):
                            raise ValueError(f"{here}{cls.__name__}.{f.name} must be a list, "
                                             f"got {type(value).__name__}")
                        value = tuple(v if isinstance(v, nested) else nested.from_dict(v, where) for v in value)
                    elif not isinstance(value, nested):
                        value = nested.from_dict(value, where)
                elif f.name in cls._TUPLES and isinstance(value, list):
                    value = tuple(value)
                kwargs[f.name] = value
            elif f.default is MISSING and f.default_factory is MISSING:
                kwargs[f.name] = None
        return cls._build(kwargs, data)

    @classmethod
    def _build(cls, kwargs: dict[str, Any], data: Mapping[str, Any]) -> Self:
        return cls(**kwargs)


# -- run.json -------------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, kw_only=True)
class CheckpointEntry(JsonRecord):
    """One checkpoint as run.json records it (written by the runner from the resolved checkpoint)."""

    name: str  #: the checkpoint's name in the spec (``--checkpoint NAME=SOURCE``)
    role: str | None = None  #: lineage role (:data:`ROLES`): spec, provenance, name, or implied by lineage
    role_source: str | None = None  #: where ``role`` came from: spec, provenance, name or parent
    parent: str | None = None  #: the model the trainer started from (provenance), when known
    kind: str | None = None  #: "hub", "local" or "adapter"
    model: str | None = None  #: hub id or local directory of the (base) model
    adapter: str | None = None  #: PEFT adapter evaluated on top of ``model``, unmerged
    revision: str | None = None
    tokenizer: str | None = None  #: where the tokenizer was read from
    adapter_rank: int | None = None
    provenance: Mapping[str, Any] | None = None  #: the trainer's provenance record, as read
    warnings: tuple[str, ...] = ()
    content_hash: str | None = None  #: hash of the weights files (resume refuses changed weights)
    files: Mapping[str, str] | None = None  #: weights file -> sha256
    #: Keys of the stored object this version has no field for (hand-written or newer runs), kept as read.
    extra: Mapping[str, Any] = field(default_factory=dict)

    _FIRST = ("name", "role")
    _REQUIRED = ("name",)
    _TUPLES = frozenset({"warnings"})

    def __getitem__(self, key: str) -> Any:
        if key in self.extra and key not in _keys_of(type(self)):
            return self.extra[key]
        return super().__getitem__(key)

    def __iter__(self) -> Iterator[str]:
        yield from _keys_of(type(self))
        yield from (k for k in self.extra if k not in _keys_of(type(self)))

    def __len__(self) -> int:
        return len(list(iter(self)))

    @classmethod
    def _build(cls, kwargs: dict[str, Any], data: Mapping[str, Any]) -> CheckpointEntry:
        known = set(_keys_of(cls))
        if kwargs.get("warnings") is None:
            kwargs["warnings"] = ()
        return cls(**kwargs, extra={k: v for k, v in data.items() if k not in known})


# -- samples.parquet ------------------------------------------------------------------------------------------


@dataclass(frozen=True, eq=False, kw_only=True)
class SampleRow(JsonRecord):
    """One row of samples.parquet: one document of one task, answered by one checkpoint, graded.

    The grader's fields are :class:`medbench.tasks.graders.GradeRecord`'s (see there for what each means),
    with the token counts added by the harness. The raw completion is kept whole. Fields that do not apply
    are ``None`` (the format flags, truncation and the flexible reading of a loglikelihood task).
    """

    # identity
    checkpoint: str
    task: str
    group: str | None = None  #: the task's group (e.g. medbench_health over its specialties)
    subgroup: str | None = None  #: e.g. a Health_Benchmarks specialty or an MMLU subject
    doc_id: Any  #: lm-eval's document index
    doc_key: str  #: the stable document key (pairs documents across checkpoints and runs)
    showcase: bool = False  #: shown in the report, never counted
    task_version: Any = None  #: the task version the sample was graded with
    # what was asked and answered
    prompt: str | None = None
    completion: str | None = None  #: the raw completion, whole (think blocks kept)
    target: Any = None
    question: str | None = None
    # the grader's record: the primary reading
    outcome: Outcome  #: one of :data:`OUTCOMES`
    extracted: str | None = None
    answer_source: str | None = None
    # the strict reading
    strict_extracted: str | None = None
    strict_correct: bool | None = None
    # the flexible reading (None for loglikelihood tasks)
    flexible_outcome: Outcome | None = None
    flexible_extracted: str | None = None
    flexible_source: str | None = None
    # format facts
    layout: str | None = None  #: "xml", "think", … or "loglikelihood" (nothing generated)
    answer_type: str | None = None
    format_strict: bool | None = None
    format_soft: bool | None = None
    think_ok: bool | None = None
    text_outside_tags: bool | None = None
    unclosed_tag: bool | None = None
    #: Hit the token limit: from the generated token ids when the backend counted them
    #: (``completion_tokens_source == "generated"``), else ``completion_tokens >= max_gen_toks``.
    truncated: bool | None = None
    # lengths
    reasoning_words: int | None = None
    answer_words: int | None = None
    completion_words: int | None = None
    reasoning_tokens: int | None = None  #: the evaluated model's tokenizer over the measured reasoning text
    answer_tokens: int | None = None
    completion_chars: int | None = None
    notes: Sequence[str] = ()  #: why the grader decided what it did (stored as a JSON list)
    #: where the grader found the reasoning ([[start, end], ...], one per block) and the answer ([start, end]):
    #: code-point offsets into the completion; empty / null for loglikelihood tasks
    reasoning_spans: Sequence[Sequence[int]] = ()
    answer_span: Sequence[int] | None = None
    # the judge of free-text answers
    judge_agree: bool | None = None
    judge_score: float | None = None
    judge_kind: str | None = None  #: "llm" or "proxy" (an offline similarity proxy: label it so)
    judge_rationale: str | None = None
    judge_model: str | None = None
    # generation facts
    #: Tokens of the completion: the ids the model generated up to where it stopped (a final EOS id not
    #: counted) when the backend counted them, else the completion text re-counted with the tokenizer.
    completion_tokens: int | None = None
    completion_tokens_source: Literal["generated", "tokenizer"] | None = None
    gen_time_s: float | None = None  #: this request's share of its generation batch
    lm_eval_doc_hash: str | None = None
    loglikelihoods: str | None = None  #: JSON list, one per choice (loglikelihood tasks)


#: Columns of samples.parquet, in order: the fields of :class:`SampleRow`.
SAMPLE_COLUMNS: tuple[str, ...] = tuple(f.name for f in fields(SampleRow))


@dataclass(frozen=True)
class GeneratedTokens:
    """What a backend counted about one generation that its text cannot tell (the text is re-tokenised
    differently, and a stop string or EOS leaves no mark in it)."""

    #: Ids the model generated up to where generation stopped: through the token that completed a stop
    #: string, or up to (not counting) the EOS id; never more than the token limit.
    n_tokens: int
    #: Generation stopped because it reached the token limit (no EOS, no stop string).
    hit_limit: bool
    #: How many characters of the decoded text each of those ``n_tokens`` ids added, in order, as little-endian
    #: uint16 (``numpy.frombuffer(token_chars, "<u2")``; 0 for an id that only began a multi-byte character, the
    #: id that completes it adds the whole character): where each generated token lies in the completion, so
    #: the reasoning and answer regions are counted in the tokens the model emitted, without re-tokenising
    #: (:func:`medbench.harness.run.sample_rows.region_token_counts`). ``None`` where the backend could not tell
    #: (no incremental decoder, or its text differs from the decoded text): the regions are then re-tokenised.
    token_chars: bytes | None = None


# -- metrics.json ---------------------------------------------------------------------------------------------

#: judge_kind values whose verdicts come (wholly or partly) from the offline similarity proxy.
PROXY_JUDGE_KINDS: frozenset[str] = frozenset({"proxy", "mixed"})


def is_proxy_judge(judge_kind: Any) -> bool:
    """Whether an accuracy judged with ``judge_kind`` rests on the offline similarity proxy (the one rule: a
    number it decides is labelled "proxy" wherever it is shown, and never shown as a plain significant gain)."""
    return judge_kind in PROXY_JUDGE_KINDS


@dataclass(frozen=True, eq=False, kw_only=True)
class _Summary(JsonRecord):
    """The numbers of some documents (one checkpoint × task, a subgroup, or a pooled task group).

    Rates are fractions; ``None`` means undefined (no documents, not applicable: format rates, truncation and
    lengths of a loglikelihood task, think_ok outside think layouts, judge agreement where no judge ran),
    never a made-up 0. What each metric means: :data:`METRICS`.
    """

    task_version: Any = None  #: the task version the samples were graded with (a group: its first task's)
    n: int = 0  #: documents scored
    n_correct: int = 0  #: outcome counts; the three add up to n
    n_wrong: int = 0
    n_unparseable: int = 0  #: its own outcome: counts against accuracy, shown apart, never folded into wrong
    accuracy: float | None = None
    accuracy_ci_low: float | None = None  #: 95% Wilson score interval of accuracy
    accuracy_ci_high: float | None = None
    flexible_accuracy: float | None = None
    strict_accuracy: float | None = None
    unparseable_rate: float | None = None
    format_strict_rate: float | None = None
    format_soft_rate: float | None = None
    think_ok_rate: float | None = None
    unclosed_tag_rate: float | None = None
    truncation_rate: float | None = None
    judge_agreement: float | None = None
    #: The unit of every length of this record: the run's ``length_unit``; ``None`` when nothing was generated.
    reasoning_length_unit: LengthUnit | None = None
    reasoning_tokens_mean: float | None = None  #: (the names say tokens; the unit says which)
    reasoning_tokens_median: float | None = None
    reasoning_tokens_p90: float | None = None
    answer_length_unit: LengthUnit | None = None  #: always equal to reasoning_length_unit
    answer_tokens_mean: float | None = None
    completion_tokens_mean: float | None = None
    completion_tokens_median: float | None = None
    judge_kind: str | None = None  #: "llm", "proxy" (label it so), "mixed" or None
    n_judged: int = 0  #: samples with a judge verdict
    #: accuracy rests on the offline similarity proxy for some documents (:func:`is_proxy_judge` of
    #: judge_kind): indicative only, labelled "proxy" wherever it is shown
    accuracy_proxy: bool | None = None

    @classmethod
    def _build(cls, kwargs: dict[str, Any], data: Mapping[str, Any]) -> Self:
        if kwargs.get("accuracy_proxy") is None:  # files written before the flag: the same rule, from judge_kind
            kwargs["accuracy_proxy"] = is_proxy_judge(kwargs.get("judge_kind"))
        return cls(**kwargs)


@dataclass(frozen=True, eq=False, kw_only=True)
class TaskMetrics(_Summary):
    """metrics.json ``per_task``: one checkpoint × task (``subgroup`` None), or one subgroup of it."""

    checkpoint: str
    task: str
    group: str | None = None  #: the task's group column
    subgroup: Any = None  #: None = the whole task

    _FIRST = ("checkpoint", "task", "group", "subgroup")
    _REQUIRED = ("checkpoint", "task")


@dataclass(frozen=True, eq=False, kw_only=True)
class GroupMetrics(_Summary):
    """metrics.json ``per_group``: one checkpoint × task group, pooled over its tasks' documents (the
    size-weighted mean lm-eval reports for a group). Kept apart from per_task: summing per_task never counts a
    document twice."""

    checkpoint: str
    group: str
    tasks: tuple[str, ...] = ()  #: its member tasks present
    subgroup: Any = None  #: always None (kept so a group record reads like a whole-task one)

    _FIRST = ("checkpoint", "group", "tasks", "subgroup")
    _REQUIRED = ("checkpoint", "group")
    _TUPLES = frozenset({"tasks"})


@dataclass(frozen=True, eq=False, kw_only=True)
class _PairNumbers(JsonRecord):
    """A paired comparison of ``checkpoint`` against ``reference`` on the documents both scored (by doc_key)."""

    reference: str
    checkpoint: str
    n_paired: int = 0
    n_reference_only: int = 0  #: documents only one side scored (left out of the paired numbers)
    n_checkpoint_only: int = 0
    reference_accuracy: float | None = None  #: accuracies on the paired documents
    checkpoint_accuracy: float | None = None
    accuracy_diff: float | None = None  #: checkpoint − reference (= (n_fixed − n_broken) / n_paired)
    diff_ci_low: float | None = None  #: 95% paired bootstrap percentile CI (seeded: reproducible)
    diff_ci_high: float | None = None
    mcnemar_p: float | None = None  #: two-sided exact McNemar p-value, raw
    #: Holm-adjusted across every comparison of this metrics.json (pairs, group_pairs, parent_pairs,
    #: parent_group_pairs; methods.multiplicity)
    mcnemar_p_adjusted: float | None = None
    #: mcnemar_p_adjusted <= methods.alpha: what marks a difference significant (the interval does not decide)
    significant: bool | None = None
    #: either side's accuracy rests on the offline similarity proxy: label it "proxy", never show it as a plain
    #: significant gain
    accuracy_proxy: bool | None = None
    n_fixed: int = 0  #: wrong/unparseable for the reference, correct for the checkpoint
    n_broken: int = 0  #: correct for the reference, not any more


@dataclass(frozen=True, eq=False, kw_only=True)
class PairMetrics(_PairNumbers):
    """metrics.json ``pairs``: one checkpoint against the reference on one task; ``parent_pairs``: one checkpoint
    against its parent in the lineage (``reference`` is then the parent)."""

    task: str
    fixed: tuple[Any, ...] = ()  #: doc_keys of the fixed documents, in the reference's sample order
    broken: tuple[Any, ...] = ()

    _FIRST = ("task", "reference", "checkpoint")
    _REQUIRED = ("task", "reference", "checkpoint")
    _TUPLES = frozenset({"fixed", "broken"})


@dataclass(frozen=True, eq=False, kw_only=True)
class GroupPairMetrics(_PairNumbers):
    """metrics.json ``group_pairs``: the same comparison pooled over a task group (the documents are listed in
    the member tasks' pairs)."""

    group: str

    _FIRST = ("group", "reference", "checkpoint")
    _REQUIRED = ("group", "reference", "checkpoint")


@dataclass(frozen=True, eq=False, kw_only=True)
class Methods(JsonRecord):
    """metrics.json ``methods``: how the intervals and tests were computed, and the reference checkpoint."""

    confidence: float | None = None
    accuracy_ci: str | None = None
    diff_ci: str | None = None
    pair_test: str | None = None
    reference: str | None = None  #: the checkpoint every other is compared with (the base, else the first)
    alpha: float | None = None  #: the level ``significant`` uses (on the Holm-adjusted p)
    multiplicity: str | None = None  #: how p-values are adjusted, across which comparisons
    decision: str | None = None  #: which statistic decides ``significant``, and what the interval is


@dataclass(frozen=True, eq=False, kw_only=True)
class RunMetrics(JsonRecord):
    """metrics.json as a whole, as :func:`medbench.harness.stats.metrics.compute_metrics` builds it."""

    schema_version: int | None = SCHEMA_VERSION
    methods: Methods = field(default_factory=Methods)
    #: The unit of every length in the run ("tokens" or "words"); ``None`` when nothing was generated.
    length_unit: LengthUnit | None = None
    per_task: tuple[TaskMetrics, ...] = ()
    pairs: tuple[PairMetrics, ...] = ()
    per_group: tuple[GroupMetrics, ...] = ()
    group_pairs: tuple[GroupPairMetrics, ...] = ()
    #: each checkpoint against its parent (GRPO against SFT) where the parent is not the reference
    parent_pairs: tuple[PairMetrics, ...] = ()
    parent_group_pairs: tuple[GroupPairMetrics, ...] = ()

    _TUPLES = frozenset({"per_task", "pairs", "per_group", "group_pairs", "parent_pairs", "parent_group_pairs"})
    _NESTED: ClassVar[Mapping[str, type]] = {
        "methods": Methods, "per_task": TaskMetrics, "pairs": PairMetrics, "per_group": GroupMetrics,
        "group_pairs": GroupPairMetrics, "parent_pairs": PairMetrics, "parent_group_pairs": GroupPairMetrics,
    }

    def all_pairs(self) -> tuple[PairMetrics | GroupPairMetrics, ...]:
        """Every comparison of the file, in the order Holm adjusts them: pairs, group_pairs, parent_pairs,
        parent_group_pairs."""
        return (*self.pairs, *self.group_pairs, *self.parent_pairs, *self.parent_group_pairs)

    @classmethod
    def _build(cls, kwargs: dict[str, Any], data: Mapping[str, Any]) -> RunMetrics:
        for name in cls._TUPLES:
            if kwargs.get(name) is None:
                kwargs[name] = ()
        if kwargs.get("methods") is None:
            kwargs["methods"] = Methods()
        if kwargs.get("length_unit") is None and "length_unit" not in data:
            # schema 1 kept the unit per record only: the run's unit is theirs when they agree
            units = {r.reasoning_length_unit for r in kwargs["per_task"] if r.reasoning_length_unit}
            kwargs["length_unit"] = units.pop() if len(units) == 1 else None
        return cls(**kwargs)
