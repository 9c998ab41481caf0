#!/usr/bin/env bash
# N-gram (prompt lookup) speculative decoding against plain decoding on a chat model: a rewrite
# and a summarise prompt, decode tokens/s, acceptance and whether the greedy text changed, for
# --draft-max 4, 8, 16 (3 runs each). Usage: scripts/bench-spec-ngram.sh MODEL.gguf [EDGELLM]
set -euo pipefail
model="${1:?usage: $0 MODEL.gguf [EDGELLM]}"
bin="${2:-$(cd "$(dirname "$0")/.." && pwd)/build/bin/edgellm}"
chat() { printf '<|im_start|>system\nYou are a helpful assistant.<|im_end|>\n<|im_start|>user\n%s<|im_end|>\n<|im_start|>assistant\n' "$1"; }
rewrite=$(chat $'Rewrite this paragraph in the past tense:\nThe bakery opens at seven in the morning. The baker makes sourdough bread, rye bread and croissants. Customers wait in line outside the door, and the smell of fresh bread fills the street. At noon the baker sells the last loaf and closes the shop.')
summarise=$(chat $'Summarise this text in two sentences:\nThe town library will close for renovation from the first of June until the end of August. During the renovation, the library will install new shelves, a children\'s reading room and faster computers. Books can still be borrowed from the mobile library, which will stop at the town square every Tuesday and Friday. The library staff thank everyone for their patience.')
echo "prompt  drafts  run  tokens  decode_tok/s  acceptance  text_hash"
for name in rewrite summarise; do
  for spec in "" "--spec-ngram 3 --draft-max 4" "--spec-ngram 3 --draft-max 8" "--spec-ngram 3 --draft-max 16"; do
    for rep in 1 2 3; do
      # shellcheck disable=SC2086
      "$bin" run -m "$model" -p "${!name}" -n 128 --temp 0 -t 2 --json $spec 2>/dev/null | python3 -c "
import json, sys, zlib
b = json.load(sys.stdin)
print('$name', '${spec:-plain}'.replace(' ', ''), $rep, len(b['tokens']), round(b['decode_tokens_per_s'], 1),
      b.get('acceptance', '-'), zlib.crc32(json.dumps(b['tokens']).encode()) % 100000)"
    done
  done
done
