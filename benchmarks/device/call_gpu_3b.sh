# One device call: the demo on 2 CPU cores (cross-machine check) beside the GPU backend benchmark on the 3B shape.
#   bash benchmarks/device/call_gpu_3b.sh     (after the site, wheels and vLLM kit were ferried)
[ -f /tmp/vllm-site/.ok ] || { bash /tmp/vk/install-vllm-kit.sh /tmp/vk > /tmp/vk_install.log 2>&1 && touch /tmp/vllm-site/.ok; }
tail -2 /tmp/vk_install.log
. benchmarks/device/setup.sh
( bash benchmarks/device/demo_cpu.sh ) &
demo=$!
source /tmp/vllm-site/vllm-env.sh
cd /tmp/code && taskset -c 2-15 python3 benchmarks/gpu_backends.py all --tokenizer /tmp/assets/realdata/tokenizers \
  --data-dir /tmp/assets/realdata --work /tmp/gb --out "$OUT/gpu_backends_3b.json" --shapes qwen2.5-3b \
  --backends hf,medbench-fast,vllm --bench-shape '' --time-budget-s 470 2>&1 | tail -20
wait $demo
tail -5 "$OUT/demo_cpu_log.txt"
