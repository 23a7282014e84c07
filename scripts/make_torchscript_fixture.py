#!/usr/bin/env python3
"""TorchScript archives of CLIP as clip.load keeps them (~/.cache/clip/ViT-B-32.pt), for ntlb's reader.

The model is OpenAI's own `clip.model.CLIP` nn.Module (model.py of the PyPI package openai-clip
1.0.1, OpenAI's code; imported from an installed `clip` package, else from that sdist fetched with
`pip download`), so the state-dict names and the traced module tree are OpenAI's. Like OpenAI's
released archives it carries the integer buffers `input_resolution`, `context_length` and
`vocab_size`, is traced (`torch.jit.trace_module`: forward, encode_image, encode_text) and saved
with `torch.jit.save`. Two precisions of storage:
  *_fp16.pt   OpenAI's dtype mix: `clip.model.convert_weights` (Conv/Linear weights and biases,
              attention in_proj/out_proj, text_projection, visual.proj in float16; embeddings,
              LayerNorm, class embedding, logit_scale in float32)
  *_fp32.pt   every tensor float32

Default: the small committed fixtures in crates/ntlb-clip/tests/fixtures/torchscript/
  tiny.safetensors        the float32 weights (OpenAI names), the twin the archives are read against
  tiny_fp32.pt, tiny_fp16.pt
  mlp.pt                  a traced two-layer MLP: a TorchScript archive of another model, to be refused
  expected.json           token ids, images and features computed here with torch in float32:
                          `fp32` from the float32 weights, `fp16` from the same weights rounded to
                          float16 (what the fp16 archive stores), and which tensors were rounded
  provenance.json

--golden OUT: the golden tiny CLIP (../shared/golden/tiny-clip/openai.safetensors, 28 MB: the real
vocabulary) as OUT/openai_fp32.pt and OUT/openai_fp16.pt; too large to commit, read by
tests/torchscript_golden.rs from $NTLB_TORCHSCRIPT_GOLDEN (default target/torchscript-golden).

Run: python scripts/make_torchscript_fixture.py [--golden target/torchscript-golden]
(needs torch, safetensors, numpy)."""
import argparse, glob, hashlib, importlib.util, json, os, subprocess, sys, tarfile, tempfile

import torch
from safetensors.torch import load_file, save_file

ROOT = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..")
OUT = os.path.join(ROOT, "crates", "ntlb-clip", "tests", "fixtures", "torchscript")
GOLDEN = os.path.join(ROOT, "..", "shared", "golden", "tiny-clip")
OPENAI_CLIP = "openai-clip==1.0.1"


def openai_model_module():
    """clip/model.py of openai-clip: the installed package's, else the sdist's."""
    spec = importlib.util.find_spec("clip")
    if spec is not None and spec.submodule_search_locations:
        path = os.path.join(list(spec.submodule_search_locations)[0], "model.py")
        source = "installed package"
    else:
        tmp = tempfile.mkdtemp()
        subprocess.run([sys.executable, "-m", "pip", "download", "--no-deps", "--no-binary", ":all:", OPENAI_CLIP, "-d", tmp],
                       check=True, stdout=subprocess.DEVNULL)
        sdist = glob.glob(os.path.join(tmp, "openai-clip-*.tar.gz"))[0]
        with tarfile.open(sdist) as t:
            member = next(m for m in t.getmembers() if m.name.endswith("clip/model.py"))
            t.extract(member, tmp)
        path = os.path.join(tmp, member.name)
        source = f"{OPENAI_CLIP} sdist"
    spec = importlib.util.spec_from_file_location("openai_clip_model", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with open(path, "rb") as f:
        digest = hashlib.sha256(f.read()).hexdigest()
    return mod, f"clip/model.py ({source}), sha256 {digest}"


def with_openai_buffers(model, resolution, context, vocab):
    """The integer buffers OpenAI's released archives carry in their state dict."""
    for name, value in [("input_resolution", resolution), ("context_length", context), ("vocab_size", vocab)]:
        if name in model.__dict__:
            delattr(model, name)
        model.register_buffer(name, torch.tensor(value))
    return model


def trace_and_save(model, image, text, path):
    model.eval()
    with torch.no_grad():
        traced = torch.jit.trace_module(
            model, {"forward": (image, text), "encode_image": (image,), "encode_text": (text,)}, check_trace=False
        )
    torch.jit.save(traced, path)
    # What clip.load does with it (jit=False): the archive's state dict.
    back = torch.jit.load(path, map_location="cpu").state_dict()
    mine = model.state_dict()
    assert back.keys() == mine.keys(), sorted(set(back) ^ set(mine))
    for k in mine:
        assert back[k].dtype == mine[k].dtype and torch.equal(back[k], mine[k]), k


def fp16_keys(clip_mod, model):
    """The tensors `convert_weights` turns into float16 (by comparing dtypes after applying it)."""
    before = {k: v.dtype for k, v in model.state_dict().items()}
    clip_mod.convert_weights(model)
    after = model.state_dict()
    return sorted(k for k in after if after[k].dtype == torch.float16 and before[k] != torch.float16)


def build(clip_mod, cfg):
    return clip_mod.CLIP(
        cfg["embed_dim"], cfg["image_resolution"], cfg["vision_layers"], cfg["vision_width"], cfg["vision_patch_size"],
        cfg["context_length"], cfg["vocab_size"], cfg["transformer_width"], cfg["transformer_heads"], cfg["transformer_layers"],
    )


def features(clip_mod, cfg, sd, image, text):
    model = build(clip_mod, cfg).eval()
    model.load_state_dict(sd)
    with torch.no_grad():
        return model.encode_image(image), model.encode_text(text)


def write_archives(clip_mod, cfg, sd, out, stem, image, text):
    """`stem`_fp32.pt and `stem`_fp16.pt of the float32 state dict `sd`; the rounded keys."""
    fp32 = with_openai_buffers(build(clip_mod, cfg), cfg["image_resolution"], cfg["context_length"], cfg["vocab_size"])
    fp32.load_state_dict(sd, strict=False)
    trace_and_save(fp32, image, text, os.path.join(out, f"{stem}_fp32.pt"))
    fp16 = with_openai_buffers(build(clip_mod, cfg), cfg["image_resolution"], cfg["context_length"], cfg["vocab_size"])
    fp16.load_state_dict(sd, strict=False)
    rounded = fp16_keys(clip_mod, fp16)
    # Traced as clip.load's archives were: the image cast to the weights' dtype by encode_image.
    trace_and_save(fp16, image, text, os.path.join(out, f"{stem}_fp16.pt"))
    return rounded


def tensor_json(t):
    return {"shape": list(t.shape), "data": t.flatten().tolist()}


def committed():
    clip_mod, model_src = openai_model_module()
    os.makedirs(OUT, exist_ok=True)
    cfg = dict(embed_dim=32, image_resolution=16, vision_layers=1, vision_width=64, vision_patch_size=8,
               context_length=8, vocab_size=64, transformer_width=64, transformer_heads=1, transformer_layers=1)
    torch.manual_seed(30)
    model = build(clip_mod, cfg)
    # Non-trivial LayerNorms, biases and class embedding (the init leaves them 1 / 0).
    with torch.no_grad():
        for k, v in model.state_dict().items():
            if k.endswith(".bias") or "ln_" in k or k.endswith("class_embedding"):
                v.add_(torch.randn_like(v) * 0.05)
    sd = {k: v.contiguous() for k, v in model.state_dict().items()}
    save_file(sd, os.path.join(OUT, "tiny.safetensors"))

    g = torch.Generator().manual_seed(31)
    image = torch.randn(2, 3, cfg["image_resolution"], cfg["image_resolution"], generator=g)
    eot = cfg["vocab_size"] - 1
    text = torch.randint(1, eot, (3, cfg["context_length"]), generator=g)
    for row, end in enumerate([3, 7, 5]):
        text[row, end] = eot
        text[row, end + 1:] = 0

    rounded = write_archives(clip_mod, cfg, sd, OUT, "tiny", image, text)
    sd16 = {k: (v.half().float() if k in rounded else v) for k, v in sd.items()}
    img32, txt32 = features(clip_mod, cfg, sd, image, text)
    img16, txt16 = features(clip_mod, cfg, sd16, image, text)

    mlp = torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.ReLU(), torch.nn.Linear(8, 2)).eval()
    torch.jit.save(torch.jit.trace(mlp, torch.randn(1, 4)), os.path.join(OUT, "mlp.pt"))

    json.dump({
        "config": cfg,
        "fp16_keys": rounded,
        "text": tensor_json(text),
        "eot_positions": [3, 7, 5],
        "image": tensor_json(image),
        "fp32": {"image_features": tensor_json(img32), "text_features": tensor_json(txt32)},
        "fp16": {"image_features": tensor_json(img16), "text_features": tensor_json(txt16)},
    }, open(os.path.join(OUT, "expected.json"), "w"))
    json.dump({
        "script": "scripts/make_torchscript_fixture.py",
        "torch": torch.__version__,
        "model": model_src,
    }, open(os.path.join(OUT, "provenance.json"), "w"), indent=1)
    for f in sorted(os.listdir(OUT)):
        print(f, os.path.getsize(os.path.join(OUT, f)))


def golden(out):
    clip_mod, model_src = openai_model_module()
    os.makedirs(out, exist_ok=True)
    c = json.load(open(os.path.join(GOLDEN, "openai_config.json")))
    cfg = dict(embed_dim=c["embed_dim"], image_resolution=c["image_resolution"], vision_layers=c["vision_layers"],
               vision_width=c["vision_width"], vision_patch_size=c["vision_patch_size"], context_length=c["context_length"],
               vocab_size=c["vocab_size"], transformer_width=c["transformer_width"],
               transformer_heads=c["transformer_heads"], transformer_layers=c["transformer_layers"])
    sd = load_file(os.path.join(GOLDEN, "openai.safetensors"))
    image = torch.zeros(1, 3, cfg["image_resolution"], cfg["image_resolution"])
    text = torch.zeros(1, cfg["context_length"], dtype=torch.long)
    text[0, :2] = torch.tensor([49406, 49407])
    rounded = write_archives(clip_mod, cfg, sd, out, "openai", image, text)
    lossy = [k for k in rounded if not torch.equal(sd[k].half().float(), sd[k])]
    json.dump({"source": "../shared/golden/tiny-clip/openai.safetensors", "model": model_src, "torch": torch.__version__,
               "fp16_keys": rounded, "fp16_keys_not_fp16_representable": lossy},
              open(os.path.join(out, "provenance.json"), "w"), indent=1)
    print(f"wrote {out}/openai_fp32.pt, openai_fp16.pt ({len(rounded)} tensors float16, {len(lossy)} of them rounded)")


if __name__ == "__main__":
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--golden", metavar="OUT", help="write the golden tiny CLIP's archives to OUT instead")
    a = ap.parse_args()
    golden(a.golden) if a.golden else committed()
