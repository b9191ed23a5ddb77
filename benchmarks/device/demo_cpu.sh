# The demo on the device machine's CPU (2 cores, no GPU), gated against the committed baseline: the check that
# .ci/demo-gate-rules.yaml holds on another processor and library build. Writes its files to $OUT/demo_cpu_*.
#   bash benchmarks/device/demo_cpu.sh
. benchmarks/device/setup.sh
run=/tmp/demo_cpu
rm -rf "$run"
start=$(date +%s)
CUDA_VISIBLE_DEVICES= taskset -c 0,1 python3 -m medbench.harness.cli demo --output "$run" > "$OUT/demo_cpu_stdout.txt" 2> "$OUT/demo_cpu_stderr.txt"
echo "demo rc=$? wall=$(( $(date +%s) - start ))s" | tee -a "$OUT/demo_cpu_stderr.txt"
python3 -m medbench.harness.cli gate --candidate "$run" --baseline .ci/demo-baseline.json \
  --rules .ci/demo-gate-rules.yaml --all-checkpoints --markdown "$OUT/demo_cpu_gate.md" > "$OUT/demo_cpu_gate.txt" 2>&1
echo "gate rc=$?" | tee -a "$OUT/demo_cpu_gate.txt"
cp "$run/samples.parquet" "$OUT/demo_cpu_samples.parquet"; cp "$run/run.json" "$OUT/demo_cpu_run.json"
lscpu | head -20 > "$OUT/demo_cpu_lscpu.txt"
