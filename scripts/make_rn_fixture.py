#!/usr/bin/env python3
"""Generate the ModifiedResNet parity fixture (crates/ntlb-clip/tests/fixtures/rn/).

The shared golden cases cover the ViT tower only. This builds a small seeded CLIP with a
ModifiedResNet image tower using open_clip_torch (PyPI; its model code is OpenAI's CLIP code
and its state-dict names are OpenAI's), randomises every BatchNorm parameter and statistic
(open_clip zero-initialises bn3.weight, which would hide the residual branch), and writes:
  model.safetensors  OpenAI state-dict names, float32
  encode_image.json  golden schema: inputs.images, outputs.image_features
  encode_text.json   golden schema: inputs.ids, outputs.text_features
Run: python scripts/make_rn_fixture.py  (needs torch, open_clip_torch, safetensors)."""
import json, os, sys

import open_clip
import torch
from open_clip.model import CLIP, CLIPTextCfg, CLIPVisionCfg
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "ntlb-clip", "tests", "fixtures", "rn")

def tensor(t, desc):
    return {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", ""), "description": desc, "data": t.tolist()}

def main():
    torch.manual_seed(7)
    model = CLIP(
        embed_dim=32,
        vision_cfg=CLIPVisionCfg(layers=(1, 2, 1, 1), width=8, image_size=64, head_width=64),
        text_cfg=CLIPTextCfg(context_length=77, vocab_size=1000, width=64, heads=1, layers=1),
        quick_gelu=True,
    ).eval()
    with torch.no_grad():
        for name, m in model.named_modules():
            if isinstance(m, torch.nn.BatchNorm2d):
                m.weight.uniform_(0.5, 1.5); m.bias.normal_(0, 0.1)
                m.running_mean.normal_(0, 0.1); m.running_var.uniform_(0.5, 1.5)
    sd = {k: v.contiguous() for k, v in model.state_dict().items() if k != "attn_mask" and not k.endswith("num_batches_tracked")}
    os.makedirs(OUT, exist_ok=True)
    save_file(sd, os.path.join(OUT, "model.safetensors"))
    g = torch.Generator().manual_seed(11)
    images = torch.randn(3, 3, 64, 64, generator=g)
    ids = torch.zeros(4, 77, dtype=torch.int64)
    for i, n in enumerate([3, 7, 12, 20]):
        ids[i, 0] = 998  # stands in for <|startoftext|> in this 1000-token vocabulary
        ids[i, 1:n] = torch.randint(1, 990, (n - 1,), generator=g)
        ids[i, n] = 999  # the largest id: where CLIP pools, as <|endoftext|>
    with torch.no_grad():
        img = model.encode_image(images)
        txt = model.encode_text(ids)
    prov = {"generator": "scripts/make_rn_fixture.py", "open_clip": open_clip.__version__, "torch": torch.__version__, "dtype": "float32"}
    json.dump({"experiment": "encode_image", "description": "open_clip ModifiedResNet encode_image, random weights", "provenance": prov,
               "inputs": {"images": tensor(images, "random normal, already normalised")},
               "outputs": {"image_features": tensor(img, "encode_image, unnormalised")}}, open(os.path.join(OUT, "encode_image.json"), "w"))
    json.dump({"experiment": "encode_text", "description": "open_clip text tower of the same model", "provenance": prov,
               "inputs": {"ids": tensor(ids, "token ids, pooled at argmax")},
               "outputs": {"text_features": tensor(txt, "encode_text, unnormalised")}}, open(os.path.join(OUT, "encode_text.json"), "w"))
    print("wrote", OUT, file=sys.stderr)

if __name__ == "__main__":
    main()
