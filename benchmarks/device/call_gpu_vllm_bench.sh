# One device call: installs the vLLM kit (ferried to /tmp/vk), then `medbench bench` of the recipes' three
# checkpoints (base + SFT and GRPO LoRA adapters of the random-weight Qwen2.5-3B shape, 128 PubMedQA documents)
# with --backend vllm (one engine for all three) and with the default (--backend auto), whole-command wall time.
# The demo on 2 CPU cores (cross-machine check) runs beside it when make_ferry.sh --with-demo sent its wheels.
#   bash benchmarks/device/call_gpu_vllm_bench.sh
[ -f /tmp/vllm-site/.ok ] || { bash /tmp/vk/install-vllm-kit.sh /tmp/vk > /tmp/vk_install.log 2>&1 && touch /tmp/vllm-site/.ok; }
tail -2 /tmp/vk_install.log
. benchmarks/device/setup.sh
demo=
if [ -f /tmp/ferry/SHA256SUMS ]; then ( bash benchmarks/device/demo_cpu.sh ) & demo=$!; fi
source /tmp/vllm-site/vllm-env.sh
cd /tmp/code && taskset -c 2-15 python3 benchmarks/gpu_backends.py all --tokenizer /tmp/assets/realdata/tokenizers \
  --data-dir /tmp/assets/realdata --work /tmp/gb --out "$OUT/gpu_bench_3ck_3b.json" --shapes '' \
  --bench-shape qwen2.5-3b --bench-runs "${BENCH_RUNS:-3ck-vllm,3ck-default}" --bench-docs 128 \
  --bench-timeout 480 --time-budget-s 540 2>&1 | grep -E "^\[|ratio|default|Error" | tail -12
cp /tmp/gb/stderr_*.txt "$OUT/" 2>/dev/null
if [ -n "$demo" ]; then wait $demo; tail -5 "$OUT/demo_cpu_log.txt"; fi
