# One device call: the demo on 2 CPU cores (cross-machine check) beside `medbench bench` commands on the 3B shape
# (default vs each backend, whole-command wall time), then the 8B shape through medbench-fast.
. benchmarks/device/setup.sh
( bash benchmarks/device/demo_cpu.sh ) &
demo=$!
source /tmp/vllm-site/vllm-env.sh
taskset -c 2-15 python3 benchmarks/gpu_backends.py all --tokenizer /tmp/assets/realdata/tokenizers \
  --data-dir /tmp/assets/realdata --work /tmp/gb --out "$OUT/gpu_bench_3b.json" --shapes '' \
  --bench-shape qwen2.5-3b --bench-runs default,medbench-fast,hf-b64,vllm-lora --bench-docs 128 \
  --bench-timeout 240 --time-budget-s 330 2>&1 | grep -E "^\[|ratio|default" | tail -12
taskset -c 2-15 timeout 150 python3 benchmarks/gpu_backends.py all --tokenizer /tmp/assets/realdata/tokenizers \
  --data-dir /tmp/assets/realdata --work /tmp/gb --out "$OUT/gpu_backends_8b.json" --shapes llama-3.1-8b \
  --backends medbench-fast --bench-shape '' --time-budget-s 120 2>&1 | grep -E "^\[" | tail -5
wait $demo
tail -4 "$OUT/demo_cpu_log.txt"
