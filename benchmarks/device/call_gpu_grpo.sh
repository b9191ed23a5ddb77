# One device call: GRPO as the recipe runs it (Unsloth fast_inference = vLLM generation) against Unsloth through
# transformers and TRL + PEFT with TRL's vLLM colocate mode, Qwen2.5-3B shape, same rewards and lengths.
#   bash benchmarks/device/call_gpu_grpo.sh
. benchmarks/device/setup.sh
source /tmp/vllm-site/vllm-env.sh
cd /tmp/code && python3 benchmarks/train_step.py --only grpo:unsloth-vllm grpo:trl-vllm \
  --tokenizer /tmp/assets/realdata/tokenizers --out-dir "$OUT" --out-name train_step_grpo_vllm_h200.json \
  --warmup 1 --steps 4 --timeout 270 --work-dir /tmp/tsw 2>&1 | grep -vE "^\s+\"|^\{|^\}" | tail -25
