"""``medbench_pubmedqa_ll`` reproduces lm-eval's own ``pubmedqa`` number exactly.

lm-eval's task configuration is loaded from the installed lm-eval, unchanged except for its dataset loading
(the bigbio script datasets>=4 cannot run, lm-eval #3645), which is pointed at the same local documents.
Both tasks then run on the same tiny model in one evaluation: every loglikelihood, every per-document acc and
the aggregate acc must be identical.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from medbench.tasks import registry
from medbench.tasks.loaders import load_pubmedqa

N_PER_LABEL = 7  # 21 documents, 7 of each gold label, so a model that always says the same word still gets
# some right and some wrong, and the per-document comparison is not all zeros


def lm_evals_own_pubmedqa_config() -> dict:
    import lm_eval.tasks
    from lm_eval.tasks._yaml_loader import load_yaml  # how lm-eval itself reads its task YAMLs

    cfg = load_yaml(Path(lm_eval.tasks.__file__).parent / "pubmedqa" / "pubmedqa.yaml", resolve_func=True)
    # Swap only the dataset loading: same docs, from the original files instead of bigbio's loading script.
    for key in ("dataset_path", "dataset_name", "training_split", "validation_split"):
        cfg.pop(key, None)
    cfg["custom_dataset"] = load_pubmedqa
    assert cfg["task"] == "pubmedqa" and cfg["test_split"] == "test"
    return cfg


@pytest.mark.slow
def test_acc_equals_lm_evals_pubmedqa_on_the_same_model_and_documents(tiny_model_dir, realdata):
    from lm_eval import simple_evaluate
    from lm_eval.models.huggingface import HFLM
    from lm_eval.tasks import TaskManager

    own = lm_evals_own_pubmedqa_config()
    assert own["doc_to_choice"] == ["yes", "no", "maybe"] and own["output_type"] == "multiple_choice"
    assert own["doc_to_text"].__module__.endswith("preprocess_pubmedqa")

    manager = TaskManager(
        include_path=str(registry.include_path()),
        include_defaults=False,
        metadata={"data_dir": str(realdata)},
    )
    labels = load_pubmedqa(data_dir=realdata)["test"]["final_decision"]
    picked = sorted(
        i
        for label in ("yes", "no", "maybe")
        for i in [j for j, x in enumerate(labels) if x == label][:N_PER_LABEL]
    )
    lm = HFLM(pretrained=str(tiny_model_dir), device="cpu", batch_size=8)
    out = simple_evaluate(
        model=lm,
        tasks=[own, "medbench_pubmedqa_ll"],
        task_manager=manager,
        log_samples=True,
        samples={"pubmedqa": picked, "medbench_pubmedqa_ll": picked},
    )

    theirs, ours = out["samples"]["pubmedqa"], out["samples"]["medbench_pubmedqa_ll"]
    assert len(theirs) == len(ours) == 3 * N_PER_LABEL
    by_id = {s["doc_id"]: s for s in ours}
    for s in theirs:
        mine = by_id[s["doc_id"]]
        assert mine["doc"]["pubid"] == s["doc"]["pubid"]
        assert mine["arguments"] == s["arguments"]  # same prompt, same continuations
        assert [r[0] for r in mine["resps"]] == [r[0] for r in s["resps"]]  # same loglikelihoods
        assert mine["acc"] == s["acc"]
    assert out["results"]["medbench_pubmedqa_ll"]["acc,none"] == out["results"]["pubmedqa"]["acc,none"]
    assert {s["acc"] for s in theirs} == {0.0, 1.0}  # right on some documents, wrong on others
