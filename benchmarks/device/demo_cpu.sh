# The demo on the device machine's CPU (2 cores, no GPU), gated against the committed baseline: the check that
# .ci/demo-gate-rules.yaml holds on another processor and library build. Writes $OUT/demo_cpu_{log.txt,gate.md,
# samples.parquet,run.json}.
#   . benchmarks/device/setup.sh && bash benchmarks/device/demo_cpu.sh
run=/tmp/demo_cpu
rm -rf "$run"
log="$OUT/demo_cpu_log.txt"
lscpu | head -20 > "$log"
start=$(date +%s)
CUDA_VISIBLE_DEVICES= taskset -c 0,1 python3 -m medbench.harness.cli demo --output "$run" > /tmp/demo_cpu_out.txt 2>&1
rc=$?
echo "demo rc=$rc wall=$(( $(date +%s) - start ))s" >> "$log"
tail -c 6000 /tmp/demo_cpu_out.txt >> "$log"
python3 -m medbench.harness.cli gate --candidate "$run" --baseline .ci/demo-baseline.json \
  --rules .ci/demo-gate-rules.yaml --all-checkpoints --markdown "$OUT/demo_cpu_gate.md" >> "$log" 2>&1
echo "gate rc=$?" >> "$log"
cp "$run/samples.parquet" "$OUT/demo_cpu_samples.parquet"; cp "$run/run.json" "$OUT/demo_cpu_run.json"
