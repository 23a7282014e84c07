#!/usr/bin/env python3
"""Generate the PyTorch-format checkpoint fixtures (crates/ntlb-clip/tests/fixtures/pytorch/).

models/synth-clip is a Hugging Face folder of 3.6 MB; these are a smaller seeded random ViT CLIP
(width 64, one layer per tower, 16-token context, 50-token vocabulary) with OpenAI's state-dict
names, written as:
  tiny_openai.safetensors       the twin every other file is compared with (safetensors)
  tiny_openai.bin               torch.save, zip format (PyTorch >= 1.6)
  tiny_openai_legacy.bin        torch.save(..., _use_new_zipfile_serialization=False)
  tiny_checkpoint.pt            a training checkpoint: {"epoch", "name", "state_dict" with a
                                `module.` prefix (DataParallel), "optimizer"}, as open_clip saves
  tiny_hf/pytorch_model.bin     the same weights in Hugging Face CLIPModel names (q/k/v split,
  tiny_hf/config.json           projections transposed, int64 position_ids), a folder without
                                model.safetensors
  torchscript.pt                a TorchScript archive (torch.jit.save), to be refused
The tensors are mixed float32 / float16 / bfloat16 / float64 (the blocks' matrices in half
precision keep the files small) and, in the torch files, some are
stored as strided or offset views, so the reader's gather and every conversion to f32 are
exercised; the integer entries OpenAI's TorchScript state dict carries are included.
Run: python scripts/make_pytorch_fixture.py  (needs torch and safetensors)."""
import json, os, sys

import torch
from safetensors.torch import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "ntlb-clip", "tests", "fixtures", "pytorch")
W, E, V, C, P, R = 64, 16, 50, 16, 8, 16  # width, embed, vocab, context, patch, resolution
G = R // P


def block(prefix, g):
    n = lambda *s: torch.randn(*s, generator=g) * 0.05
    return {
        f"{prefix}ln_1.weight": 1 + n(W), f"{prefix}ln_1.bias": n(W),
        f"{prefix}attn.in_proj_weight": n(3 * W, W), f"{prefix}attn.in_proj_bias": n(3 * W),
        f"{prefix}attn.out_proj.weight": n(W, W), f"{prefix}attn.out_proj.bias": n(W),
        f"{prefix}ln_2.weight": 1 + n(W), f"{prefix}ln_2.bias": n(W),
        f"{prefix}mlp.c_fc.weight": n(4 * W, W), f"{prefix}mlp.c_fc.bias": n(4 * W),
        f"{prefix}mlp.c_proj.weight": n(W, 4 * W), f"{prefix}mlp.c_proj.bias": n(W),
    }


def openai_state_dict():
    g = torch.Generator().manual_seed(17)
    n = lambda *s: torch.randn(*s, generator=g) * 0.05
    sd = {
        "token_embedding.weight": n(V, W),
        "positional_embedding": n(C, W),
        **block("transformer.resblocks.0.", g),
        "ln_final.weight": 1 + n(W), "ln_final.bias": n(W),
        "text_projection": n(W, E),
        "visual.class_embedding": n(W),
        "visual.conv1.weight": n(W, 3, P, P),
        "visual.positional_embedding": n(G * G + 1, W),
        "visual.ln_pre.weight": 1 + n(W), "visual.ln_pre.bias": n(W),
        **block("visual.transformer.resblocks.0.", g),
        "visual.ln_post.weight": 1 + n(W), "visual.ln_post.bias": n(W),
        "visual.proj": n(W, E),
        "logit_scale": torch.tensor(4.6052),
    }
    # The blocks' matrices in half precision (text float16, image bfloat16) keep the files small.
    for k in sd:
        if k.endswith("_weight") or (k.endswith(".weight") and sd[k].dim() == 2 and "resblocks" in k):
            sd[k] = sd[k].half() if k.startswith("transformer.") else sd[k].bfloat16()
    sd["visual.class_embedding"] = sd["visual.class_embedding"].double()
    # The integer entries of OpenAI's TorchScript state dict (ignored by the loader).
    sd["input_resolution"] = torch.tensor(R)
    sd["context_length"] = torch.tensor(C)
    sd["vocab_size"] = torch.tensor(V)
    return sd


def as_views(sd):
    """The same values, stored as a transposed view and as an offset into a larger storage."""
    out = dict(sd)
    out["text_projection"] = sd["text_projection"].t().contiguous().t()
    out["visual.proj"] = sd["visual.proj"].t().contiguous().t()
    big = torch.zeros(5)
    big[3] = sd["logit_scale"]
    out["logit_scale"] = big[3]
    out["visual.ln_post.bias"] = torch.cat([torch.zeros(7), sd["visual.ln_post.bias"]])[7:]
    assert all(torch.equal(out[k], sd[k]) for k in sd)
    assert not out["text_projection"].is_contiguous() and out["logit_scale"].storage_offset() == 3
    return out


def hf_state_dict(sd):
    """Hugging Face CLIPModel names (the rows of KEY_TABLE in crates/ntlb-clip/src/weights.rs)."""
    hf = {}
    for tower, src, dst in [("text", "transformer.resblocks.", "text_model.encoder.layers."),
                            ("vision", "visual.transformer.resblocks.", "vision_model.encoder.layers.")]:
        for k, v in sd.items():
            if not k.startswith(src):
                continue
            i, rest = k[len(src):].split(".", 1)
            p = f"{dst}{i}."
            if rest.startswith("attn.in_proj_"):
                wb = rest[len("attn.in_proj_"):]
                for part, chunk in zip("qkv", v.chunk(3, dim=0)):
                    hf[f"{p}self_attn.{part}_proj.{wb}"] = chunk.clone()
                continue
            for a, b in [("ln_1.", "layer_norm1."), ("ln_2.", "layer_norm2."), ("attn.out_proj.", "self_attn.out_proj."),
                         ("mlp.c_fc.", "mlp.fc1."), ("mlp.c_proj.", "mlp.fc2.")]:
                if rest.startswith(a):
                    hf[p + b + rest[len(a):]] = v
    hf.update({
        "text_model.embeddings.token_embedding.weight": sd["token_embedding.weight"],
        "text_model.embeddings.position_embedding.weight": sd["positional_embedding"],
        "text_model.embeddings.position_ids": torch.arange(C).unsqueeze(0),
        "text_model.final_layer_norm.weight": sd["ln_final.weight"],
        "text_model.final_layer_norm.bias": sd["ln_final.bias"],
        "text_projection.weight": sd["text_projection"].t().contiguous(),
        "vision_model.embeddings.class_embedding": sd["visual.class_embedding"],
        "vision_model.embeddings.patch_embedding.weight": sd["visual.conv1.weight"],
        "vision_model.embeddings.position_embedding.weight": sd["visual.positional_embedding"],
        "vision_model.embeddings.position_ids": torch.arange(G * G + 1).unsqueeze(0),
        "vision_model.pre_layrnorm.weight": sd["visual.ln_pre.weight"],
        "vision_model.pre_layrnorm.bias": sd["visual.ln_pre.bias"],
        "vision_model.post_layernorm.weight": sd["visual.ln_post.weight"],
        "vision_model.post_layernorm.bias": sd["visual.ln_post.bias"],
        "visual_projection.weight": sd["visual.proj"].t().contiguous(),
        "logit_scale": sd["logit_scale"],
    })
    return hf


def main():
    os.makedirs(os.path.join(OUT, "tiny_hf"), exist_ok=True)
    sd = openai_state_dict()
    save_file({k: v.contiguous() for k, v in sd.items()}, os.path.join(OUT, "tiny_openai.safetensors"))
    views = as_views(sd)
    torch.save(views, os.path.join(OUT, "tiny_openai.bin"))
    torch.save(views, os.path.join(OUT, "tiny_openai_legacy.bin"), _use_new_zipfile_serialization=False)
    sdp = {"module." + k: v for k, v in sd.items()}
    opt = {"state": {0: {"step": torch.tensor(3.0), "exp_avg": torch.zeros(4)}}, "param_groups": [{"lr": 1e-3, "params": [0]}]}
    torch.save({"epoch": 3, "name": "tiny", "state_dict": sdp, "optimizer": opt}, os.path.join(OUT, "tiny_checkpoint.pt"))
    torch.save(hf_state_dict(sd), os.path.join(OUT, "tiny_hf", "pytorch_model.bin"))
    json.dump({"architectures": ["CLIPModel"], "model_type": "clip", "projection_dim": E,
               "text_config": {"hidden_act": "quick_gelu", "hidden_size": W, "num_hidden_layers": 1, "num_attention_heads": 1,
                               "max_position_embeddings": C, "vocab_size": V},
               "vision_config": {"hidden_act": "quick_gelu", "hidden_size": W, "num_hidden_layers": 1, "num_attention_heads": 1,
                                 "image_size": R, "patch_size": P}},
              open(os.path.join(OUT, "tiny_hf", "config.json"), "w"), indent=1)
    torch.jit.save(torch.jit.script(torch.nn.Linear(2, 2)), os.path.join(OUT, "torchscript.pt"))
    json.dump({"generator": "scripts/make_pytorch_fixture.py", "torch": torch.__version__},
              open(os.path.join(OUT, "provenance.json"), "w"))
    print("wrote", OUT, file=sys.stderr)


if __name__ == "__main__":
    main()
