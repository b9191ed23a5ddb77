"""Several processes, one run: ``medbench bench`` data parallel through lm-eval and accelerate.

``accelerate launch`` or ``torchrun`` starts N processes (one per GPU; gloo on a CPU). Each runs the same bench
(the same plan, the same ``--limit`` sample, the same checkpoints and tasks in the same order) with its own model
copy, and lm-eval shards inside each (checkpoint, task): ``evaluate`` gives process r the documents r, r+N,
r+2N, … (``Task.build_all_requests(rank=, world_size=)``), pads the shorter shards with copies of their last
request so every process makes the same number of model calls, and gathers every process's logged samples on
process 0 (``gather_object``). Process 0 alone grades, writes partial/, samples.parquet, metrics.json, run.json
and the report; its rows are sorted by document, so the run directory is the one a single process writes
(tests/test_multiprocess_bench.py compares them). The backends take the ranks from accelerate even where
lm-eval's HFLM would not (:class:`medbench.harness.backends.lm_backends.DataParallelRanks`).

Resume: each process keeps its own lm-eval request cache (``cache/<checkpoint>_rank<r>.db``) and the token
counts and timings of the generations it made (``_rank<r>.generated.jsonl``, ``_rank<r>.timings.jsonl``).
After a kill of any process the same command (same number of processes) gives every process its shard back,
and each reuses its finished requests. Another number of processes is still correct, but process r reads only
``_rank<r>.db``, so requests another rank had finished are generated again.

This module holds the launch facts (:func:`current_launch`, the one reader of the launcher's environment) and
the rules that follow from them (:func:`use_launch_device`, :func:`check_launch`, :func:`stop_on_failure`).
"""

from __future__ import annotations

import os
from dataclasses import dataclass

from medbench.tasks.errors import BackendError

__all__ = ["Launch", "check_launch", "current_launch", "stop_on_failure", "use_launch_device"]


@dataclass(frozen=True)
class Launch:
    """Where this process sits among the processes its launcher started."""

    rank: int = 0
    """This process's global rank (``RANK``): 0 writes the run directory."""
    world_size: int = 1
    """Processes in the run (``WORLD_SIZE``), each with its own model copy."""
    local_rank: int = 0
    """Rank on this machine (``LOCAL_RANK``): the GPU this process uses."""

    @property
    def main(self) -> bool:
        """Whether this process writes the run directory and prints (rank 0)."""
        return self.rank == 0

    @property
    def several(self) -> bool:
        """Whether more than one process shares the run."""
        return self.world_size > 1


def _env_int(name: str, default: int) -> int:
    value = os.environ.get(name, "")
    try:
        return int(value) if value.strip() else default
    except ValueError:
        raise BackendError(f"the launcher's environment variable {name}={value!r} is not an integer; start "
                           f"medbench with `torchrun` or `accelerate launch`, or unset {name}") from None


def current_launch() -> Launch:
    """This process's :class:`Launch`, from the variables ``torchrun`` and ``accelerate launch`` both set
    (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); a plain ``medbench bench`` is rank 0 of 1."""
    launch = Launch(rank=_env_int("RANK", 0), world_size=_env_int("WORLD_SIZE", 1),
                    local_rank=_env_int("LOCAL_RANK", 0))
    if not 0 <= launch.rank < max(1, launch.world_size):
        raise BackendError(f"RANK={launch.rank} is outside WORLD_SIZE={launch.world_size}: start medbench with "
                           f"`torchrun` or `accelerate launch`, or unset both")
    return launch


def use_launch_device(device: str, launch: Launch) -> None:
    """Tell accelerate, before the first model is built, that the processes of a CPU run form one group.

    accelerate forms a process group of CPU processes (gloo) only when asked to use the CPU
    (``ACCELERATE_USE_CPU``; ``accelerate launch --cpu`` sets it but starts a single process, and
    ``accelerate launch --multi_gpu`` sets it to False); otherwise every process gets a world of one under
    ``torchrun`` and lm-eval would not shard."""
    if launch.several and device.startswith("cpu"):
        os.environ["ACCELERATE_USE_CPU"] = "true"


def check_launch(backend: str, launch: Launch) -> None:
    """Fail before any model loads when ``backend`` (a resolved backend name) can't share a run across
    ``launch``'s processes. lm-eval's VLLM class never shards by process (every process would score every
    document and write the same request cache); vLLM parallelises inside one process instead."""
    if launch.several and backend == "vllm":
        raise BackendError(
            f"--backend vllm runs in one process, not {launch.world_size} (lm-eval's vLLM model does not split "
            f"documents across processes): run plain `medbench bench --backend vllm` with "
            f"--tensor-parallel-size N (one model over N GPUs) or --data-parallel-size N (N engines; needs "
            f"ray), or use --backend medbench-fast or hf under torchrun / accelerate launch"
        )


def stop_on_failure(launch: Launch) -> bool:
    """Whether a failing checkpoint stops the whole run instead of being recorded while the others go on.

    Under several processes it does: the other processes wait for this one inside lm-eval's collectives
    (gathers, barriers), and a process that skipped ahead to the next checkpoint would meet them in the wrong
    call. Exiting lets the launcher stop the rest; the same command resumes with the finished work kept."""
    return launch.several
