"""``medbench bench`` end to end on tiny models: two checkpoints (one a LoRA adapter, evaluated unmerged),
a real run directory, and the errors a user meets. Offline; the bundled sample data; limit 2, 16 new tokens."""

from __future__ import annotations

import errno
import json
import shutil
from pathlib import Path

import pytest
from medbench.harness.cli import main
from medbench.harness.run.rundir import SAMPLE_COLUMNS, RunWriter, load_run

SAMPLE_DATA = Path(__file__).resolve().parents[1] / "tasks" / "sample_data"
TASKS = "medbench_pubmedqa,medbench_pubmedqa_ll"


def bench_args(out: Path, *checkpoints: str, tasks: str = TASKS, extra: tuple[str, ...] = ()) -> list[str]:
    args = ["bench", "--tasks", tasks, "--limit", "2", "--max-new-tokens", "16", "--batch-size", "1",
            "--data-dir", str(SAMPLE_DATA), "--output", str(out)]
    for ck in checkpoints:
        args += ["--checkpoint", ck]
    return args + list(extra)


@pytest.fixture(scope="module")
def finished_run(tiny_model_dir, tiny_lora_adapter_dir, tmp_path_factory):
    out = tmp_path_factory.mktemp("bench") / "run"
    code = main(bench_args(out, f"base={tiny_model_dir}", f"lora={tiny_lora_adapter_dir}"))
    return code, out


@pytest.mark.slow
def test_run_directory_is_complete_and_consistent(finished_run, tiny_model_dir, tiny_lora_adapter_dir, capsys):
    code, out = finished_run
    assert code == 0
    run = load_run(out)
    meta = run.meta
    assert meta["status"] == "complete" and not meta["errors"]
    cks = {c["name"]: c for c in meta["checkpoints"]}
    assert cks["base"]["kind"] == "local" and cks["base"]["adapter"] is None
    assert cks["lora"]["kind"] == "adapter"
    assert cks["lora"]["model"] == str(tiny_model_dir.resolve())  # base read from adapter_config.json
    assert cks["lora"]["adapter"] == str(tiny_lora_adapter_dir.resolve())
    assert cks["base"]["content_hash"] and cks["lora"]["content_hash"] != cks["base"]["content_hash"]
    assert {t["name"]: t["version"] for t in meta["tasks"]} == {"medbench_pubmedqa": "2", "medbench_pubmedqa_ll": "1"}
    assert meta["environment"]["packages"]["lm-eval"] == "0.4.13"
    assert "cpu_count" in meta["environment"]["hardware"] and "sha" in meta["environment"]["git"]
    assert set(meta["timings"]) == {"base", "lora"} and "medbench_pubmedqa" in meta["timings"]["lora"]

    df = run.samples()
    assert list(df.columns[: len(SAMPLE_COLUMNS)]) == list(SAMPLE_COLUMNS)
    assert len(df) == 2 * 2 * 2  # checkpoints × tasks × documents
    for task, group in df.groupby("task"):
        by_ck = {ck: g.sort_values("doc_id") for ck, g in group.groupby("checkpoint")}
        # every checkpoint saw exactly the same documents and the same prompts
        assert list(by_ck["base"]["doc_key"]) == list(by_ck["lora"]["doc_key"])
        assert list(by_ck["base"]["prompt"]) == list(by_ck["lora"]["prompt"])
    gen = df[df["task"] == "medbench_pubmedqa"]
    assert gen["prompt"].str.contains("<|im_start|>system", regex=False).all()  # chat template, system prompt
    assert (gen["completion_tokens"] <= 16).all()
    assert (gen["truncated"] == (gen["completion_tokens"] >= 16)).all()
    assert gen["gen_time_s"].notna().all() and (gen["gen_time_s"] > 0).all()
    # the adapter changed the answers: it was applied, not ignored
    assert set(gen[gen.checkpoint == "base"]["completion"]) != set(gen[gen.checkpoint == "lora"]["completion"])

    # metrics.json agrees with the samples
    for rec in run.task_metrics():
        if rec["subgroup"] is not None:
            continue
        part = df[(df.checkpoint == rec["checkpoint"]) & (df.task == rec["task"])]
        assert rec["n"] == len(part)
        assert rec["accuracy"] == pytest.approx((part["outcome"] == "correct").mean())
    pairs = run.pair_metrics()
    assert {(p["task"], p["reference"], p["checkpoint"]) for p in pairs} == {
        ("medbench_pubmedqa", "base", "lora"), ("medbench_pubmedqa_ll", "base", "lora")}

    # lm-eval's own outputs are kept, per checkpoint
    for name in ("base", "lora"):
        files = sorted(p.name for p in (out / "lm_eval" / name).iterdir())
        assert any(f.startswith("results_") for f in files)
        assert any(f.startswith("samples_medbench_pubmedqa_ll_") for f in files)
    results = json.loads(next((out / "lm_eval" / "lora").glob("results_*.json")).read_text())
    assert results["config"]["model_args"]["peft"] == str(tiny_lora_adapter_dir.resolve())

    # the HTML report is rendered at the end (unless --no-report), into the run directory
    assert "lora" in (out / "report.html").read_text(encoding="utf-8")


@pytest.mark.slow
def test_adapter_is_evaluated_unmerged_exactly_as_peft_runs_it(finished_run, tiny_model_dir, tiny_lora_adapter_dir):
    """Greedy generation of base + adapter through PEFT by hand gives the run's completion, token for token."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    _, out = finished_run
    df = load_run(out).samples()
    row = df[(df.checkpoint == "lora") & (df.task == "medbench_pubmedqa")].iloc[0]
    tok = AutoTokenizer.from_pretrained(str(tiny_lora_adapter_dir))
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(str(tiny_model_dir)),
                                      str(tiny_lora_adapter_dir)).eval()
    ids = tok(row["prompt"], return_tensors="pt", add_special_tokens=False)["input_ids"]
    with torch.no_grad():
        gen = model.generate(ids, max_new_tokens=16, do_sample=False)[0, ids.shape[1]:].tolist()
    if tok.eos_token_id in gen:
        gen = gen[: gen.index(tok.eos_token_id)]
    assert tok.decode(gen, skip_special_tokens=True) == row["completion"]


@pytest.mark.slow
def test_rerun_reuses_finished_pairs(finished_run, tiny_model_dir, tiny_lora_adapter_dir, capsys):
    _, out = finished_run
    before = load_run(out).samples()
    capsys.readouterr()
    assert main(bench_args(out, f"base={tiny_model_dir}", f"lora={tiny_lora_adapter_dir}")) == 0
    captured = capsys.readouterr()
    assert "all 2 tasks already finished" in captured.err and "loading" not in captured.err
    after = load_run(out).samples()
    assert before.drop(columns=["gen_time_s"]).equals(after.drop(columns=["gen_time_s"]))
    assert "medbench_pubmedqa_ll" in captured.out and "accuracy [95% CI]" in captured.out  # the summary table


# -- errors -------------------------------------------------------------------------------------------------


def test_unknown_task_lists_the_closest_name(tiny_model_dir, tmp_path, capsys):
    assert main(bench_args(tmp_path / "r", f"base={tiny_model_dir}", tasks="medbench_pubmedq")) == 2
    err = capsys.readouterr().err
    assert "unknown task or group 'medbench_pubmedq'" in err and "did you mean 'medbench_pubmedqa'" in err
    assert not (tmp_path / "r").exists()  # nothing was started


def test_missing_checkpoint_fails_before_anything_runs(tiny_model_dir, tmp_path, capsys):
    code = main(bench_args(tmp_path / "r", f"base={tiny_model_dir}", "grpo=./out/grpo_adapter"))
    assert code == 2
    assert "checkpoint 'grpo': source ./out/grpo_adapter does not exist" in capsys.readouterr().err
    assert not (tmp_path / "r").exists()


def test_adapter_on_the_wrong_base_is_refused(tiny_lora_adapter_dir, tmp_path, capsys):
    from medbench.harness.models.tiny import build_tiny_model

    other = build_tiny_model(tmp_path / "other", seed=5, hidden_size=32)
    code = main(bench_args(tmp_path / "r", f"lora={other}+{tiny_lora_adapter_dir}"))
    assert code == 2
    assert "does not fit base" in capsys.readouterr().err


def test_vllm_backend_without_vllm_names_the_extra(tiny_model_dir, tmp_path, capsys):
    import importlib.util

    if importlib.util.find_spec("vllm") is not None:
        pytest.skip("vllm is installed here")
    assert main(bench_args(tmp_path / "r", f"base={tiny_model_dir}", extra=("--backend", "vllm"))) == 2
    assert "pip install 'medbench[vllm]'" in capsys.readouterr().err


def test_other_settings_on_an_existing_run_dir_are_refused(finished_run, tiny_model_dir, tiny_lora_adapter_dir,
                                                            capsys):
    _, out = finished_run
    args = bench_args(out, f"base={tiny_model_dir}", f"lora={tiny_lora_adapter_dir}")
    args[args.index("--limit") + 1] = "3"
    assert main(args) == 1
    err = capsys.readouterr().err
    assert "already holds a run with other settings (limit was 2, now 3)" in err and "new --output" in err


def test_corrupt_run_json_names_the_fix(finished_run, tiny_model_dir, tmp_path, capsys):
    _, src = finished_run
    out = tmp_path / "copy"
    shutil.copytree(src, out)
    (out / "run.json").write_text("{not json")
    assert main(bench_args(out, f"base={tiny_model_dir}")) == 1
    err = capsys.readouterr().err
    assert "run.json is not valid JSON" in err and f"delete {out / 'run.json'} and re-run" in err


@pytest.mark.slow
def test_full_disk_keeps_finished_work_and_resumes(tiny_model_dir, tmp_path, monkeypatch, capsys):
    out = tmp_path / "run"
    real_write_pair = RunWriter.write_pair
    calls = {"n": 0}

    def fills_up(self, checkpoint, task, rows):
        calls["n"] += 1
        if calls["n"] == 2:
            raise OSError(errno.ENOSPC, "No space left on device", str(self.root / "partial"))
        return real_write_pair(self, checkpoint, task, rows)

    monkeypatch.setattr(RunWriter, "write_pair", fills_up)
    assert main(bench_args(out, f"base={tiny_model_dir}")) == 1
    err = capsys.readouterr().err
    assert "the disk is full" in err and "run the same command again to resume" in err
    writer = RunWriter(out)
    assert writer.done_rows("base", "medbench_pubmedqa") is not None  # the pair finished before is kept
    assert writer.done_rows("base", "medbench_pubmedqa_ll") is None

    monkeypatch.setattr(RunWriter, "write_pair", real_write_pair)
    assert main(bench_args(out, f"base={tiny_model_dir}")) == 0
    assert len(load_run(out).samples()) == 4


@pytest.mark.slow
def test_one_failing_checkpoint_does_not_lose_the_others(tiny_model_dir, tmp_path, capsys):
    broken = tmp_path / "broken"
    shutil.copytree(tiny_model_dir, broken)
    (broken / "model.safetensors").write_bytes(b"this is not a safetensors file")
    out = tmp_path / "run"
    assert main(bench_args(out, f"broken={broken}", f"base={tiny_model_dir}",
                           tasks="medbench_pubmedqa_ll")) == 1
    captured = capsys.readouterr()
    assert "failed checkpoints" in captured.err and "broken:" in captured.err
    run = load_run(out)
    assert run.meta["status"] == "incomplete" and "broken" in run.meta["errors"]
    assert set(run.samples()["checkpoint"]) == {"base"}  # the good checkpoint's work is in the run
    assert "traceback" in (out / "errors.log").read_text().lower()
