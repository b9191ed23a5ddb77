"""``medbench bench``'s engine: every checkpoint × task through lm-eval, into one run directory.

For each checkpoint the model is loaded once (``HFLM`` / ``VLLM``, an adapter on top unmerged), wrapped in
lm-eval's sqlite request cache, and each task is run through :mod:`medbench.harness.run.evaluate` (the lm-eval
path evaluation during training shares: :func:`lm_eval.evaluator.evaluate` with ``log_samples=True``, greedy,
zero-shot). lm-eval's per-sample log is graded by the task's grader (:func:`medbench.tasks.scoring.grade_doc`,
with the checkpoint's own tokenizer as the token counter) into run-directory rows, written per finished pair,
and lm-eval's own outputs are kept under ``lm_eval/``.

``--limit`` scores a fair sample (:mod:`medbench.harness.run.sampling`: seeded, stratified by label or
subject), drawn once before any model loads, the same documents for every checkpoint, and recorded in
run.json's ``sample`` (seed, method, doc ids per task); a resumed run checks it draws the same documents.

Resume: a finished (checkpoint, task) pair is never recomputed; inside an unfinished pair, every generation
that reached the request cache is reused. Decoding is greedy, so the resumed result equals an uninterrupted
one (exactly so at batch size 1; larger batches pad differently and can move a float by an ulp).

Failure: resolution errors (a missing checkpoint, an adapter that doesn't fit, an unknown task) stop the
run before any model is loaded. A checkpoint that fails while running is recorded and the others go on; a
full disk stops the run with the finished work kept. Either way samples, metrics and run.json describe
what finished.

Several processes (``torchrun`` / ``accelerate launch``, :mod:`medbench.harness.run.shard`): every process runs
this same loop on its own model copy; lm-eval shards each task's documents across them and gathers the logged
samples on rank 0, which alone grades and writes the run directory. A checkpoint failure then stops the run.
"""

from __future__ import annotations

import errno
import gc
import logging
import sys
import time
import traceback
from dataclasses import dataclass, field, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, TextIO

from medbench.harness.run.checkpoints import (
    CheckpointError,
    ResolvedCheckpoint,
    compute_content_hash,
    resolve_checkpoint,
)
from medbench.harness.run.evaluate import (
    PlannedTask,
    default_chat_template,
    grade_samples,
    load_task,
    make_task_manager,
    plan_task,
    run_task,
    sample_task,
)
from medbench.harness.run.rundir import RunDirError, RunWriter, checkpoint_roles
from medbench.harness.run.rundir import lineage_order as rundir_lineage_order
from medbench.harness.run.sampling import TaskSample
from medbench.harness.run.shard import check_launch, current_launch, stop_on_failure
from medbench.harness.run.spec import BenchSpec, SpecError
from medbench.tasks.errors import RUN_FAILED, MedbenchError

__all__ = ["BenchError", "BenchOutcome", "DiskFullError", "PlannedTask", "default_chat_template", "run_bench"]

#: Settings that change what a model is asked or how it answers: a resumed run must keep them.
RESULT_SETTINGS = ("limit", "seed", "dtype", "load_in_4bit", "backend", "max_new_tokens", "chat_template",
                   "task_metadata")


class BenchError(MedbenchError):
    """The bench run can't start or go on; the message says why and what to do. Finished work is kept."""

    exit_code = RUN_FAILED


class DiskFullError(BenchError):
    pass


@dataclass
class PairResult:
    checkpoint: str
    task: str
    status: str  # "done" | "reused" | "failed" | "not run"
    n: int = 0
    seconds: float = 0.0
    cached_requests: int = 0


@dataclass
class BenchOutcome:
    run_dir: Path
    pairs: list[PairResult] = field(default_factory=list)
    errors: dict[str, str] = field(default_factory=dict)  # checkpoint -> message
    metrics: dict[str, Any] | None = None

    @property
    def ok(self) -> bool:
        return not self.errors


# -- planning ---------------------------------------------------------------------------------------------


def plan_tasks(spec: BenchSpec) -> list[PlannedTask]:
    """Expand groups to leaf tasks and attach each task's effective options. Unknown names fail here."""
    from medbench.tasks import registry

    planned: dict[str, PlannedTask] = {}
    for opts in spec.tasks:
        try:
            specs = registry.expand([opts.name])
        except registry.UnknownTaskError as e:
            raise SpecError(f"--tasks: {e}; see `medbench tasks`") from e
        for ts in specs:
            explicit = opts.chat_template if opts.chat_template is not None else spec.chat_template
            planned[ts.name] = plan_task(ts, max_new_tokens=opts.max_new_tokens or spec.max_new_tokens,
                                         chat_template=explicit)
    return list(planned.values())


def resolve_all(spec: BenchSpec) -> list[ResolvedCheckpoint]:
    """Resolve every checkpoint; report all problems at once, before anything is loaded."""
    resolved, problems = [], []
    for c in spec.checkpoints:
        try:
            resolved.append(resolve_checkpoint(c, trust_remote_code=spec.trust_remote_code))
        except CheckpointError as e:
            problems.append(str(e))
    if problems:
        raise CheckpointError("\n".join(problems))
    return resolved


def checkpoint_entries(checkpoints: list[ResolvedCheckpoint]) -> list[dict[str, Any]]:
    """run.json's checkpoint entries in lineage order (:func:`medbench.harness.run.rundir.lineage_order`, the one
    ordering rule), with the role that lineage implies filled in (``role_source: "parent"``)."""
    metas = [c.to_meta() for c in checkpoints]
    roles = checkpoint_roles(metas)
    for m in metas:
        if m["role"] is None and roles[m["name"]]:
            m["role"], m["role_source"] = roles[m["name"]], "parent"
    return [dict(m) for m in rundir_lineage_order(metas)]


# -- resume compatibility ------------------------------------------------------------------------------------


def _settings(spec: BenchSpec) -> dict[str, Any]:
    return {k: getattr(spec, k) for k in RESULT_SETTINGS}


def check_resumable(previous: dict[str, Any], spec: BenchSpec, tasks: list[PlannedTask],
                    checkpoints: list[ResolvedCheckpoint], out: Path) -> None:
    """A run directory may be resumed (or extended with new checkpoints/tasks) only under the same settings."""
    diffs = []
    prev_settings = previous.get("settings", {})
    for key, now in _settings(spec).items():
        if key in prev_settings and prev_settings[key] != now:
            diffs.append(f"{key} was {prev_settings[key]!r}, now {now!r}")
    prev_tasks = {t["name"]: t for t in previous.get("tasks", [])}
    for t in tasks:
        old = prev_tasks.get(t.name)
        if old is None:
            continue
        for key, now in (("version", t.spec.version), ("max_gen_toks", t.max_gen_toks),
                         ("chat_template", t.chat_template)):
            if old.get(key) != now:
                diffs.append(f"task {t.name}: {key} was {old.get(key)!r}, now {now!r}")
    prev_cks = {c["name"]: c for c in previous.get("checkpoints", [])}
    for c in checkpoints:
        old = prev_cks.get(c.name)
        if old is None:
            continue
        if (old.get("model"), old.get("adapter")) != (c.model, c.adapter):
            diffs.append(f"checkpoint {c.name}: was {old.get('model')} + {old.get('adapter')}, "
                         f"now {c.model} + {c.adapter}")
    if diffs:
        raise BenchError(
            f"--output {out} already holds a run with other settings ({'; '.join(diffs)}). Resume it with "
            f"its own settings, or write this run to a new --output (or delete {out})."
        )


def _check_hash(previous: dict[str, Any] | None, ck: ResolvedCheckpoint, writer: RunWriter) -> None:
    if not previous:
        return
    old = {c["name"]: c for c in previous.get("checkpoints", [])}.get(ck.name)
    if not old or not old.get("content_hash") or not ck.content_hash:
        return
    started = any(writer.is_done(ck.name, t["name"]) for t in previous.get("tasks", []))
    if old["content_hash"] != ck.content_hash and (started or Path(writer.request_cache_prefix(ck.name)
                                                                     + "_rank0.db").exists()):
        raise BenchError(
            f"checkpoint {ck.name}: its weights changed since this run started (content hash "
            f"{old['content_hash'][:12]}… → {ck.content_hash[:12]}…); its earlier results would mix two "
            f"models. Write to a new --output, or delete {writer.root}/partial/{ck.name}__* and "
            f"{writer.root}/cache/{ck.name}* to redo it."
        )


# -- one (checkpoint, task) pair -----------------------------------------------------------------------------


def draw_samples(spec: BenchSpec, tasks: list[PlannedTask], task_manager: Any,
                 doc_counts: dict[str, int] | None = None) -> dict[str, TaskSample]:
    """The documents each task scores under ``spec.limit`` (none: every document, an empty mapping), drawn
    once for the whole run, before any model loads: every checkpoint scores the same ones. Every task's
    documents are read here even without a limit, so a data error (a missing file, a wrong schema: a
    ``DataError``, exit 2) stops the run before the first model loads, not once per checkpoint after it.
    ``doc_counts``, when given, is filled with how many documents each task scores."""
    out = {}
    for task in tasks:
        try:
            loaded = load_task(task_manager, task, seed=spec.seed)
        except MedbenchError:
            raise
        except Exception as e:  # lm-eval could not build the task: say which, before any model is loaded
            raise BenchError(f"task {task.name}: its documents could not be read ({type(e).__name__}: {e})") from e
        if spec.limit is not None:
            out[task.name] = sample_task(loaded, task, spec.limit, seed=spec.seed)
        if doc_counts is not None:
            doc_counts[task.name] = (len(out[task.name].doc_ids) if task.name in out
                                     else len(loaded["tasks"][task.name].eval_docs))
    return out


def sample_meta(spec: BenchSpec, samples: dict[str, TaskSample]) -> dict[str, Any] | None:
    """run.json's ``sample``: how a limited run chose its documents, and which (per task, lm-eval doc ids)."""
    if spec.limit is None:
        return None
    return {"limit": spec.limit, "seed": spec.seed,
            "method": "seeded; stratified by subject where a task has several, else by gold label where the "
                      "answer is yes/no/maybe or a letter; showcase documents always (medbench.harness.run."
                      "sampling)",
            "tasks": {name: s.to_meta() for name, s in samples.items()}}


def check_same_sample(previous: dict[str, Any], spec: BenchSpec, samples: dict[str, TaskSample], out: Path) -> None:
    """A resumed limited run must score the documents it started with (else its pairs would not pair)."""
    if spec.limit is None:
        return
    before = previous.get("sample")
    if before is None:
        if previous.get("tasks"):
            raise BenchError(
                f"--output {out} holds a limited run from an older medbench, which scored the first "
                f"{spec.limit} documents of each task; this one scores a seeded, stratified sample. Write this "
                f"run to a new --output (the old one stays readable)."
            )
        return
    changed = [name for name, s in samples.items()
               if name in before.get("tasks", {}) and list(s.doc_ids) != before["tasks"][name].get("doc_ids")]
    if changed:
        raise BenchError(
            f"--output {out}: the --limit sample of {', '.join(changed)} is not the one this run started with "
            f"(the task's documents changed: another --data-dir or dataset version?). Resume it with the same "
            f"data, or write this run to a new --output."
        )


# -- the run ----------------------------------------------------------------------------------------------


def _utcnow() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def _quiet_libraries(verbose: bool) -> None:
    if verbose:
        return
    for name in ("lm-eval", "lm_eval", "datasets"):
        logging.getLogger(name).setLevel(logging.ERROR)
    # sqlitedict logs every failed write as dozens of stack-frame lines, then re-raises the error at the next
    # call, where the runner reports it (a full disk: one message, the run stops, finished work is kept)
    logging.getLogger("sqlitedict").setLevel(logging.CRITICAL)
    import datasets
    import transformers

    transformers.logging.set_verbosity_error()
    transformers.utils.logging.disable_progress_bar()
    datasets.disable_progress_bars()


def _is_disk_full(e: BaseException) -> bool:
    """Whether ``e`` (or what caused it) is a full disk: ENOSPC / EDQUOT, or SQLite's SQLITE_FULL ("database or
    disk is full"), which the request cache (sqlitedict) raises as a ``sqlite3.OperationalError``, not an
    OSError."""
    import sqlite3

    while e is not None:
        if isinstance(e, OSError) and e.errno in (errno.ENOSPC, errno.EDQUOT):
            return True
        if isinstance(e, sqlite3.Error) and (getattr(e, "sqlite_errorcode", None) == sqlite3.SQLITE_FULL
                                             or "database or disk is full" in str(e)):
            return True
        e = e.__cause__ or e.__context__  # type: ignore[assignment]
    return False


def _disk_full(out: Path, e: BaseException) -> DiskFullError:
    return DiskFullError(
        f"the disk is full ({e}). Finished (checkpoint, task) pairs and cached generations in {out} are "
        f"kept: free some space (or move {out} to a disk with room) and run the same command again to resume."
    )


def _free_memory() -> None:
    gc.collect()
    try:
        import torch

        if torch.cuda.is_available():
            torch.cuda.empty_cache()
    except ImportError:
        pass


def run_bench(spec: BenchSpec, *, stream: TextIO | None = None, verbose: bool = False,
              judge: Any = None) -> BenchOutcome:
    """Run the bench described by ``spec``; return what finished and what failed (see module docstring).

    Raises (each a :class:`~medbench.tasks.errors.MedbenchError`) :class:`SpecError`, :class:`CheckpointError`,
    ``BackendError`` or ``DataError`` (exit 2) before any model loads, and :class:`BenchError` (exit 1) when the
    run directory can't be used or the disk fills up (finished work kept).
    """
    _quiet_libraries(verbose)
    run = _BenchRun(spec, stream or sys.stderr, judge)
    run.prepare()
    return run.execute()


class _BenchRun:
    """One ``medbench bench`` invocation: prepare (plan, resolve, open the run dir), then each checkpoint."""

    def __init__(self, spec: BenchSpec, stream: TextIO, judge: Any) -> None:
        self.spec, self.stream, self.judge = spec, stream, judge
        if not spec.output:
            raise SpecError("no output directory: give --output RUN_DIR (or 'output' in the spec file)")
        self.out = Path(spec.output)
        self.launch = current_launch()  # under torchrun / accelerate launch only rank 0 writes the run dir
        self.main_process = self.launch.main
        self.errors: dict[str, str] = {}
        self.outcome = BenchOutcome(run_dir=self.out)

    def _say(self, text: str) -> None:
        if self.main_process:
            print(text, file=self.stream)

    # -- before any model is loaded --------------------------------------------------------------------------
    def prepare(self) -> None:
        from medbench.harness.backends.lm_backends import check_backend, resolve_backend
        from medbench.harness.run import environment

        check_backend(self.spec)  # a BackendError (exit 2) names what to install or drop
        check_launch(resolve_backend(self.spec), self.launch)
        self.tasks = plan_tasks(self.spec)
        self.checkpoints = resolve_all(self.spec)
        for ck in self.checkpoints:
            for w in ck.warnings:
                self._say(f"warning: checkpoint {ck.name}: {w}")
        out = self.out
        if out.exists() and not out.is_dir():
            raise BenchError(f"--output {out} is a file; give a directory for the run")
        if out.is_dir() and any(out.iterdir()) and not (out / "run.json").exists() \
                and not (out / "partial").exists():
            raise BenchError(f"--output {out} is not empty and is not a medbench run directory; "
                             f"choose a new path")
        try:
            self.writer = RunWriter(out)
            self.previous = self.writer.read_meta()
        except RunDirError as e:
            raise BenchError(f"{e}. If this directory was written by the same command, delete "
                             f"{out / 'run.json'} and re-run: finished pairs in {out / 'partial'} are kept.") from e
        except OSError as e:
            if _is_disk_full(e):
                raise _disk_full(out, e) from e
            raise
        if self.previous:
            check_resumable(self.previous, self.spec, self.tasks, self.checkpoints, out)
        self.task_manager = make_task_manager(self.spec.data_dir, self.spec.task_metadata)
        doc_counts: dict[str, int] = {}
        self.samples = draw_samples(self.spec, self.tasks, self.task_manager, doc_counts)
        if self.previous:
            check_same_sample(self.previous, self.spec, self.samples, out)
        self._choose_backend(doc_counts)
        self.hash_memo = self.writer.read_state("hashes")
        for ck in self.checkpoints:
            if ck.kind != "hub":  # a hub model is hashed once it is downloaded, after loading
                compute_content_hash(ck, self.hash_memo)
                _check_hash(self.previous, ck, self.writer)
        self.started_at = (self.previous or {}).get("started_at") or _utcnow()
        self.timings: dict[str, Any] = dict((self.previous or {}).get("timings", {}))
        self.env = environment.environment()

    def _choose_backend(self, doc_counts: dict[str, int]) -> None:
        """The backend this run uses (``self.backend``; ``self.run_spec`` is the spec with it named) and, for
        vLLM, the engines shared by checkpoints over one base (``self.vllm``). A GPU ``auto`` becomes vLLM where
        it is installed and estimated faster for this run's size (medbench.harness.backends.vllm_engine)."""
        from medbench.harness.backends import vllm_engine
        from medbench.harness.backends.lm_backends import build_vllm, local_adapter, resolve_backend, vllm_installed

        self.backend = resolve_backend(self.spec)
        self.auto_choice: vllm_engine.AutoChoice | None = None
        keys = None
        if (self.spec.backend == "auto" and self.backend == "medbench-fast" and vllm_installed()
                and not self.launch.several and not self.spec.load_in_4bit
                and self.spec.vllm.data_parallel_size == 1):
            keys = vllm_engine.engine_keys(self.checkpoints)
            tokens = vllm_engine.planned_tokens([(doc_counts.get(t.name, 0), t.max_gen_toks or 0)
                                                 for t in self.tasks if t.spec.output_type == "generate_until"])
            self.auto_choice = vllm_engine.choose_auto(self.checkpoints, tokens, engines=len(set(keys.values())),
                                                       warm_cache=vllm_engine.vllm_cache_warm())
            self.backend = self.auto_choice.backend
            self._say(f"backend auto: {self.backend} ({self.auto_choice.reason}; --backend names one)")
        self.run_spec = replace(self.spec, backend=self.backend)
        self.vllm = None
        if self.backend == "vllm" and self.spec.vllm.data_parallel_size == 1:
            keys = keys or vllm_engine.engine_keys(self.checkpoints)
            self.vllm = vllm_engine.SharedVLLM(
                self.checkpoints, lambda ck, adapter_rank: build_vllm(ck, self.run_spec, adapter_rank=adapter_rank),
                local_adapter, keys)
            if self.vllm.count < len(self.checkpoints):
                self._say(f"vLLM: {len(self.checkpoints)} checkpoints on {self.vllm.count} engine(s) (adapters "
                          f"served by their base's engine)")

    def write_meta(self, status: str) -> None:
        if not self.main_process:
            return
        self.writer.write_meta({
            "run_id": self.out.name,
            "status": status,
            "started_at": self.started_at,
            "updated_at": _utcnow(),
            "command": " ".join(sys.argv),
            "spec": self.spec.to_dict(),
            "settings": _settings(self.spec),
            "checkpoints": checkpoint_entries(self.checkpoints),
            "tasks": [t.to_meta() for t in self.tasks],
            "sample": sample_meta(self.spec, self.samples),
            "environment": self.env,
            "processes": self.launch.world_size,
            "backend_used": self.backend,
            **({"backend_auto": self.auto_choice.to_meta()} if self.auto_choice else {}),
            "timings": self.timings,
            "errors": self.errors,
        })

    # -- the run ------------------------------------------------------------------------------------------
    def execute(self) -> BenchOutcome:
        from medbench.harness.run.progress import format_duration

        try:
            self.write_meta("running")
            for index, ck in enumerate(self.checkpoints, 1):
                self._run_checkpoint(index, ck)
                _free_memory()
            self.outcome.errors = self.errors
            if not self.main_process:
                return self.outcome
            self.outcome.metrics = finalize(self.writer, self.spec, self.tasks, self.checkpoints)
            self.write_meta("complete" if not self.errors else "incomplete")
        except OSError as e:
            if _is_disk_full(e):
                raise _disk_full(self.out, e) from e
            raise
        total = sum(p.seconds for p in self.outcome.pairs)
        self._say(f"finished in {format_duration(total)} of evaluation; run directory: {self.out}")
        return self.outcome

    def _run_checkpoint(self, index: int, ck: ResolvedCheckpoint) -> None:
        """Evaluate one checkpoint on its unfinished tasks; record (not raise) a failure of this checkpoint."""
        head = f"[{index}/{len(self.checkpoints)}] {ck.name}"
        todo = [t for t in self.tasks if self.writer.done_rows(ck.name, t.name) is None]
        self.outcome.pairs += [PairResult(ck.name, t.name, "reused") for t in self.tasks if t not in todo]
        if not todo:
            self._say(f"{head}: all {len(self.tasks)} tasks already finished in {self.out}")
            return
        self._say(f"{head}: loading {ck.model}" + (f" + adapter {ck.adapter}" if ck.adapter else ""))
        cached = None
        try:
            cached = self._load(ck)
            for ti, task in enumerate(todo, 1):
                self._run_pair(cached, ck, task, f"{head} [{ti}/{len(todo)}] {task.name}")
        except KeyboardInterrupt:
            raise
        except DiskFullError:
            raise
        except BenchError as e:
            if stop_on_failure(self.launch):
                raise
            self.errors[ck.name] = str(e)
        except Exception as e:
            if _is_disk_full(e):
                raise _disk_full(self.out, e) from e
            self.errors[ck.name] = _explain(ck, e)
            stop = stop_on_failure(self.launch)  # the other processes wait for this one (harness/run/shard.py)
            if self.main_process or stop:
                where = f" (process {self.launch.rank} of {self.launch.world_size})" if stop else ""
                with (self.out / "errors.log").open("a", encoding="utf-8") as log:
                    log.write(f"--- {_utcnow()} checkpoint {ck.name}{where}\n{traceback.format_exc()}\n")
            if stop:
                raise BenchError(f"checkpoint {ck.name} failed in process {self.launch.rank} of "
                                 f"{self.launch.world_size}: {self.errors[ck.name]}; the run stops (the other "
                                 f"processes would wait for this one). Finished work in {self.out} is kept: fix "
                                 f"it and run the same command again to resume") from e
        finally:
            if self.vllm is not None:
                self.vllm.done(ck)
            if cached is not None:
                try:
                    cached.close()
                except Exception as e:  # the cache's last commit on a full disk: say so once, keep the rest
                    if not _is_disk_full(e):
                        raise
                    raise _disk_full(self.out, e) from e
        if ck.name in self.errors:
            self._say(f"error: checkpoint {ck.name} failed: {self.errors[ck.name]} (the other checkpoints go on)")
            self.outcome.pairs += [PairResult(ck.name, t.name, "failed") for t in todo
                                   if self.writer.done_rows(ck.name, t.name) is None]

    def _load(self, ck: ResolvedCheckpoint) -> Any:
        """Load the model (lm-eval LM) and wrap it in the resumable request cache."""
        from medbench.harness.backends.lm_backends import build_lm
        from medbench.harness.run.request_cache import ResumableLM

        t_load = time.monotonic()
        if self.vllm is not None:
            lm, started = self.vllm.lm_for(ck)
            if not started:
                self._say(f"  {ck.name}: on the vLLM engine already started for {ck.model}")
        else:
            lm = build_lm(ck, self.run_spec)
        if ck.kind == "hub":
            compute_content_hash(ck, self.hash_memo)
            _check_hash(self.previous, ck, self.writer)
        if self.main_process:
            self.writer.write_state("hashes", self.hash_memo)
        self.timings.setdefault(ck.name, {})["load_s"] = round(time.monotonic() - t_load, 2)
        rank = int(getattr(lm, "rank", 0) or 0)
        if hasattr(lm, "on_generated"):  # hf / medbench-fast count each generation's token ids: keep them
            lm.on_generated = self.writer.generation_recorder(ck.name, rank)
        # vLLM reports results only when a call returns: feed it chunks so a crash loses at most one chunk
        # (hf and medbench-fast write each finished request to the cache themselves)
        chunk = None if self.backend != "vllm" or self.spec.vllm.data_parallel_size > 1 else 256
        return ResumableLM(
            lm, f"{self.writer.request_cache_prefix(ck.name)}_rank{rank}.db",
            timings=self.writer.read_timings(ck.name),
            on_timings=lambda t, name=ck.name, r=rank: self.writer.append_timings(name, t, rank=r),
            chunk_size=chunk,
        )

    def _run_pair(self, cached: Any, ck: ResolvedCheckpoint, task: PlannedTask, label: str) -> None:
        from medbench.harness.run import sample_rows
        from medbench.harness.run.progress import PairProgress

        lm = cached.lm
        if task.chat_template and not getattr(lm.tokenizer, "chat_template", None):
            if task.chat_template_explicit:
                raise BenchError(f"task {task.name} asks for the chat template, but {ck.name}'s tokenizer has "
                                 f"none; set chat_template: false for this task or use a chat model")
            self._say(f"warning: {ck.name} has no chat template; {task.name} runs on the plain prompt for it")
        rank = int(getattr(lm, "rank", 0) or 0)
        progress = PairProgress(label=label, stream=self.stream) if rank == 0 else None
        cached.progress = progress
        t0 = time.monotonic()
        sample = self.samples.get(task.name)
        loaded = load_task(self.task_manager, task, seed=self.spec.seed)
        results, samples = run_task(lm, loaded, task, doc_ids=sample.doc_ids if sample else None, cached_lm=cached)
        if rank != 0:
            return
        if self.launch.several:  # the other processes' generation times, written before lm-eval gathered
            for key, seconds in self.writer.read_timings(ck.name).items():
                cached.timings.setdefault(key, seconds)
        rows = grade_samples(lm, task, samples, checkpoint=ck.name, seconds_for=cached.request_seconds,
                             judge=self.judge, generated=self.writer.read_generated(ck.name))
        sample_rows.save_lm_eval_outputs(self.writer.lm_eval_dir(ck.name), ck, task, results, samples)
        self.writer.write_pair(ck.name, task.name, rows)
        seconds = time.monotonic() - t0
        self.timings.setdefault(ck.name, {})[task.name] = round(seconds, 2)
        self.outcome.pairs.append(PairResult(ck.name, task.name, "done", len(rows), seconds,
                                             progress.cached if progress else 0))
        if progress:
            progress.finish(f" ({len(rows)} documents)")
        self.write_meta("running")


def _explain(ck: ResolvedCheckpoint, e: Exception) -> str:
    text = f"{type(e).__name__}: {e}".strip()
    if "out of memory" in text.lower():
        return (f"out of memory ({text.splitlines()[0]}); try --batch-size 1, --load-in-4bit or a smaller "
                f"--max-new-tokens, then run the same command again to resume")
    return f"{text.splitlines()[0] if text else type(e).__name__} (traceback in errors.log)"


def finalize(writer: RunWriter, spec: BenchSpec, tasks: list[PlannedTask],
             checkpoints: list[ResolvedCheckpoint]) -> dict[str, Any]:
    """Gather every finished pair into samples.parquet and compute metrics.json."""
    import pandas as pd
    from medbench.harness.stats.metrics import compute_metrics

    rows: list[dict[str, Any]] = []
    finished = []
    for ck in checkpoints:
        for t in tasks:
            got = writer.done_rows(ck.name, t.name)
            if got is not None:
                rows.extend(got)
                if ck not in finished:
                    finished.append(ck)
    frame = pd.DataFrame(rows) if rows else pd.DataFrame(columns=["checkpoint", "task"])
    writer.write_samples(rows, frame if rows else None)  # one frame for both: building it is 1 s a 30,000 rows
    order = checkpoint_entries(finished)  # whole entries: roles for the order, parents for parent comparisons
    reference = spec.reference if spec.reference in [c.name for c in finished] else None
    metrics = compute_metrics(frame, order, reference=reference) if rows else {"per_task": [], "pairs": []}
    writer.write_metrics(metrics)
    return metrics
