#!/usr/bin/env python3
"""PyTorch CPU baseline for `ntlb bench encode`: the same architectures (open_clip's OpenAI
model definitions, random weights), the same batches, median of N runs after one warm-up.
Texts run all 77 positions, as the original CLIP code does; both text rows use that figure."""
import argparse, json, statistics, time

import open_clip
import torch

NAMES = {"vit-b/32": "ViT-B-32-quickgelu", "vit-b/16": "ViT-B-16-quickgelu", "vit-l/14": "ViT-L-14-quickgelu",
         "rn50": "RN50-quickgelu", "rn101": "RN101-quickgelu"}

def median(reps, f):
    f()
    ts = []
    for _ in range(max(reps, 1)):
        s = time.perf_counter(); f(); ts.append(time.perf_counter() - s)
    return statistics.median(ts)

def main():
    p = argparse.ArgumentParser()
    p.add_argument("--presets", default="ViT-B/32,RN50")
    p.add_argument("--batches", default="1,32")
    p.add_argument("--reps", type=int, default=3)
    a = p.parse_args()
    torch.manual_seed(0)
    rows = []
    for preset in a.presets.split(","):
        model = open_clip.create_model(NAMES[preset.lower()], pretrained=None).eval()
        res = model.visual.image_size if isinstance(model.visual.image_size, int) else model.visual.image_size[0]
        for b in map(int, a.batches.split(",")):
            x = torch.randn(b, 3, res, res)
            ids = torch.randint(1, 49000, (b, 77)); ids[:, 76] = 49407
            with torch.no_grad():
                s = median(a.reps, lambda: model.encode_image(x))
                rows.append({"impl": "torch", "preset": preset, "what": "images", "batch": b, "seconds": s, "per_second": b / s})
                s = median(a.reps, lambda: model.encode_text(ids))
                for what in ("texts (77 positions)", "texts (16-token prompt)"):
                    rows.append({"impl": "torch", "preset": preset, "what": what, "batch": b, "seconds": s, "per_second": b / s})
    print(json.dumps(rows))

if __name__ == "__main__":
    main()
