# One device call: generation backends on the 8B shape (stock hf, medbench-fast, vLLM base + LoRA, the ceiling),
# then the SFT step comparison (Unsloth vs TRL + PEFT) with more timed steps.
#   bash benchmarks/device/call_gpu_8b_sft.sh
. benchmarks/device/setup.sh
source /tmp/vllm-site/vllm-env.sh
cd /tmp/code && python3 benchmarks/gpu_backends.py all --tokenizer /tmp/assets/realdata/tokenizers \
  --data-dir /tmp/assets/realdata --work /tmp/gb --out "$OUT/gpu_backends_8b.json" --shapes llama-3.1-8b \
  --backends hf,medbench-fast,vllm --hf-prompts 32 --hf-batch 32 --bench-shape "" --time-budget-s 290 2>&1 \
  | grep -E "^\[" | tail -6
python3 benchmarks/train_step.py --only sft:unsloth sft:trl --tokenizer /tmp/assets/realdata/tokenizers \
  --out-dir "$OUT" --out-name train_step_sft_h200.json --warmup 2 --steps 6 --timeout 130 --work-dir /tmp/tsw \
  2>&1 | grep -vE "^\s+\"|^\{|^\}" | tail -12
