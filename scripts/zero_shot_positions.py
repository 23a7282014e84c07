#!/usr/bin/env python3
"""Text positions a zero-shot classifier bank encodes: every prompt padded to 77 (the reference)
against chunks of 256 prompts of similar length, each as long as its longest prompt (ntlb's
ClassTextEncoder). Uses `ntlb tokenize`, so the lengths are CLIP's own.

    scripts/zero_shot_positions.py TOKENIZER_JSON [CLASSES_TSV] [TEMPLATES_TXT]
"""
import json, subprocess, sys

tok = sys.argv[1]
classes = sys.argv[2] if len(sys.argv) > 2 else "datasets/imagenet_classnames.tsv"
templates = sys.argv[3] if len(sys.argv) > 3 else "datasets/imagenet_templates_80.txt"
ntlb = "target/release/ntlb"
names = [l.rstrip("\n").split("\t")[1] for l in open(classes) if l.strip()]
temps = [l.rstrip("\n") for l in open(templates) if l.strip()]
full = chunked = n = longest = total = 0
for t in temps:
    texts = [t.replace("{}", c.replace("_", " ")) for c in names]
    out = subprocess.run([ntlb, "tokenize", "--truncate", "--tokenizer", tok, *texts], capture_output=True, text=True, check=True).stdout
    lens = sorted(json.loads(l)["eot"] + 1 for l in out.splitlines() if l.startswith("{"))
    assert len(lens) == len(texts)
    for i in range(0, len(lens), 256):
        chunked += len(lens[i : i + 256]) * lens[i : i + 256][-1]
    full += 77 * len(lens)
    n += len(lens); total += sum(lens); longest = max(longest, lens[-1])
print(json.dumps({"prompts": n, "mean_length": total / n, "max_length": longest,
                  "positions_padded_to_77": full, "positions_by_length_chunks": chunked, "ratio": full / chunked}))
