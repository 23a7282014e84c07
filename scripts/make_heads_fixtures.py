#!/usr/bin/env python3
"""Attention-head parity fixtures (crates/ntlb-clip/tests/fixtures/heads/): heads that are NOT
64 wide, as transformers and open_clip compute them.

Run: python3 scripts/make_heads_fixtures.py [--golden ../shared/golden]
(needs torch, transformers, open_clip_torch, safetensors; float32 on CPU; NTLB_GOLDEN also works).

The golden tiny CLIP (../shared/golden/tiny-clip: width 128 in both towers, 2 heads of 64) is
loaded here, weights unchanged, into models whose configs split the same width otherwise:
  transformers  config.json with text_config.num_attention_heads 4 (32 wide) and
                vision_config.num_attention_heads 8 (16 wide)
                -> hf_config.json, hf_encode_text.json, hf_encode_image.json
  open_clip     a model_cfg with text_cfg.heads 4 and vision_cfg.head_width 32 (4 heads), quick_gelu
                true (the golden weights are QuickGELU), created by open_clip.create_model; its
                open_clip_config.json is written by open_clip's own save_config_for_hf
                -> openclip_config.json, openclip_encode_text.json, openclip_encode_image.json
Checks before anything is written (exit 1 on a miss): transformers on the unmodified hf/ and
open_clip with 64-wide heads reproduce the golden features (1e-5 relative); each library builds
the head counts asked for; transformers with 4 / 4 heads gives open_clip's features; open_clip's
local-dir loading of the written folder layout gives the same features.

As the GELU fixtures, these copy no inputs and no weights: `inputs` names the golden case and its
sha256; crates/ntlb-clip/tests/heads_parity.rs puts the inputs back after checking the digest and
assembles the model folders from ../shared/golden in a tempdir."""
import argparse, copy, hashlib, json, os, pathlib, shutil, sys, tempfile

import numpy
import open_clip
import safetensors
import torch
import transformers
from safetensors.torch import load_file

ROOT = pathlib.Path(__file__).resolve().parents[1]
OUT = ROOT / "crates" / "ntlb-clip" / "tests" / "fixtures" / "heads"

FEATURE_TOL = 1e-5  # ntlb_golden::compare::tolerance for encode_text / encode_image
HF_HEADS = {"text": 4, "vision": 8}
OC_TEXT_HEADS, OC_HEAD_WIDTH = 4, 32  # vision: 128 / 32 = 4 heads

# The golden tiny architecture (../shared/golden/README.md) as an open_clip model config.
MODEL_CFG = {
    "embed_dim": 64,
    "quick_gelu": True,
    "vision_cfg": {"image_size": 32, "layers": 2, "width": 128, "head_width": 64, "patch_size": 8},
    "text_cfg": {"context_length": 77, "vocab_size": 49408, "width": 128, "heads": 2, "layers": 2},
}


def sha256(path):
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def tensor(t, desc):
    return {"shape": list(t.shape), "dtype": str(t.dtype).replace("torch.", ""), "description": desc, "data": t.tolist()}


def t_of(x):
    return torch.tensor(x["data"])


def deviation(ours, theirs):
    """As ntlb_golden::case::deviation: max |a-b| and ||a-b||_2 / ||b||_2."""
    a, b = torch.as_tensor(ours, dtype=torch.float64).flatten(), torch.as_tensor(theirs, dtype=torch.float64).flatten()
    assert a.shape == b.shape, (a.shape, b.shape)
    nb = b.norm().item()
    d = (a - b).norm().item()
    return {"max_abs": (a - b).abs().max().item() if a.numel() else 0.0, "rel": d / nb if nb > 0 else (0.0 if d == 0 else float("inf"))}


def require(what, dev, tol):
    print(f"  {what}: max abs {dev['max_abs']:.3e}, rel {dev['rel']:.3e} (tol {tol:.0e})", file=sys.stderr)
    if not dev["rel"] <= tol:
        sys.exit(f"make_heads_fixtures.py: {what} off by {dev} (tolerance {tol}); nothing written")
    return dev


def versions():
    return {"torch": torch.__version__, "transformers": transformers.__version__, "open_clip_torch": open_clip.__version__,
            "safetensors": safetensors.__version__, "numpy": numpy.__version__, "python": sys.version.split()[0],
            "device": "cpu", "dtype": "float32", "torch_num_threads": torch.get_num_threads()}


def input_ref(golden, name):
    return {"golden_case": name, "golden_sha256": sha256(golden / name),
            "note": f"the inputs of the golden case {name} (not copied, to keep this file small)"}


def unwrap(x):
    # transformers 5 may return an output object; the projected features are its pooler_output.
    return getattr(x, "pooler_output", x)


def hf_features(golden, config, ids, images):
    from transformers import CLIPModel

    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "config.json").write_text(json.dumps(config, indent=2))
        shutil.copy(golden / "tiny-clip" / "hf" / "model.safetensors", tmp / "model.safetensors")
        model = CLIPModel.from_pretrained(str(tmp), torch_dtype=torch.float32, attn_implementation="eager").eval()
    heads = (model.text_model.encoder.layers[0].self_attn.num_heads, model.vision_model.encoder.layers[0].self_attn.num_heads)
    with torch.no_grad():
        txt = unwrap(model.get_text_features(input_ids=ids))
        img = unwrap(model.get_image_features(pixel_values=images))
    return txt, img, heads


def build_open_clip(model_cfg):
    """open_clip's CLIP from a model config dict, exactly as create_model builds a registered one."""
    from open_clip.factory import _MODEL_CONFIGS

    name = f"ntlb-tiny-heads-{model_cfg['text_cfg']['heads']}-{model_cfg['vision_cfg']['head_width']}"
    _MODEL_CONFIGS[name] = copy.deepcopy(model_cfg)
    return open_clip.create_model(name, pretrained=None, precision="fp32", device="cpu").eval()


def open_clip_features(golden, model_cfg, ids, images):
    sd = load_file(str(golden / "tiny-clip" / "openai.safetensors"))
    model = build_open_clip(model_cfg)
    result = model.load_state_dict(sd, strict=False)
    if result.missing_keys or result.unexpected_keys:
        sys.exit(f"open_clip model and openai.safetensors disagree: missing {result.missing_keys}, unexpected {result.unexpected_keys}")
    heads = (model.transformer.resblocks[0].attn.num_heads, model.visual.transformer.resblocks[0].attn.num_heads)
    with torch.no_grad():
        txt = model.encode_text(ids)
        img = model.encode_image(images)
    return txt, img, heads, model


def open_clip_dir_config(model, model_cfg):
    """open_clip_config.json as open_clip's hub repos carry it, written by save_config_for_hf."""
    from open_clip.push_to_hf_hub import save_config_for_hf

    with tempfile.TemporaryDirectory() as tmp:
        path = pathlib.Path(tmp) / "open_clip_config.json"
        save_config_for_hf(model, path, model_config=model_cfg)
        return json.loads(path.read_text())


def main():
    p = argparse.ArgumentParser()
    default_golden = os.environ.get("NTLB_GOLDEN") or str(ROOT / ".." / "shared" / "golden")
    p.add_argument("--golden", default=default_golden)
    p.add_argument("--out", default=str(OUT))
    a = p.parse_args()
    golden, out = pathlib.Path(a.golden).resolve(), pathlib.Path(a.out)
    cases = {n: json.loads((golden / n).read_text()) for n in ("encode_text.json", "encode_image.json")}
    ids = t_of(cases["encode_text.json"]["inputs"]["ids"]).long()
    images = t_of(cases["encode_image.json"]["inputs"]["images"]).float()
    gold_txt = t_of(cases["encode_text.json"]["outputs"]["text_features"])
    gold_img = t_of(cases["encode_image.json"]["outputs"]["image_features"])
    prov = versions()
    checks = {}

    print("transformers:", file=sys.stderr)
    hf_cfg = json.loads((golden / "tiny-clip" / "hf" / "config.json").read_text())
    txt, img, heads = hf_features(golden, hf_cfg, ids, images)
    assert heads == (2, 2), heads
    checks["hf_64_wide_vs_golden_text"] = require("transformers, golden hf/ (2 heads of 64) vs golden encode_text", deviation(txt, gold_txt), FEATURE_TOL)
    checks["hf_64_wide_vs_golden_image"] = require("transformers, golden hf/ (2 heads of 64) vs golden encode_image", deviation(img, gold_img), FEATURE_TOL)
    hf_heads_cfg = copy.deepcopy(hf_cfg)
    hf_heads_cfg["text_config"]["num_attention_heads"] = HF_HEADS["text"]
    hf_heads_cfg["vision_config"]["num_attention_heads"] = HF_HEADS["vision"]
    hf_txt, hf_img, heads = hf_features(golden, hf_heads_cfg, ids, images)
    assert heads == (HF_HEADS["text"], HF_HEADS["vision"]), heads
    checks["hf_heads_vs_64_wide_text (how far apart the head splits put the features)"] = deviation(hf_txt, gold_txt)
    checks["hf_heads_vs_64_wide_image"] = deviation(hf_img, gold_img)

    print("open_clip:", file=sys.stderr)
    txt, img, heads, _ = open_clip_features(golden, MODEL_CFG, ids, images)
    assert heads == (2, 2), heads
    checks["openclip_64_wide_vs_golden_text"] = require("open_clip, 64-wide heads vs golden encode_text", deviation(txt, gold_txt), FEATURE_TOL)
    checks["openclip_64_wide_vs_golden_image"] = require("open_clip, 64-wide heads vs golden encode_image", deviation(img, gold_img), FEATURE_TOL)
    oc_cfg = copy.deepcopy(MODEL_CFG)
    oc_cfg["text_cfg"]["heads"] = OC_TEXT_HEADS
    oc_cfg["vision_cfg"]["head_width"] = OC_HEAD_WIDTH
    oc_txt, oc_img, heads, oc_model = open_clip_features(golden, oc_cfg, ids, images)
    assert heads == (OC_TEXT_HEADS, 128 // OC_HEAD_WIDTH), heads
    same_split = copy.deepcopy(hf_cfg)
    same_split["text_config"]["num_attention_heads"] = OC_TEXT_HEADS
    same_split["vision_config"]["num_attention_heads"] = 128 // OC_HEAD_WIDTH
    t2, i2, _ = hf_features(golden, same_split, ids, images)
    checks["openclip_heads_vs_hf_same_split_text"] = require("open_clip heads 4 / head_width 32 vs transformers 4 / 4 heads, text", deviation(oc_txt, t2), FEATURE_TOL)
    checks["openclip_heads_vs_hf_same_split_image"] = require("open_clip heads 4 / head_width 32 vs transformers 4 / 4 heads, image", deviation(oc_img, i2), FEATURE_TOL)
    oc_json = open_clip_dir_config(oc_model, oc_cfg)
    # open_clip's own loading path, from the folder layout the Rust test assembles.
    with tempfile.TemporaryDirectory() as tmp:
        tmp = pathlib.Path(tmp)
        (tmp / "open_clip_config.json").write_text(json.dumps(oc_json, indent=2))
        shutil.copy(golden / "tiny-clip" / "openai.safetensors", tmp / "open_clip_model.safetensors")
        m = open_clip.create_model("local-dir:" + str(tmp), precision="fp32", device="cpu").eval()
        with torch.no_grad():
            checks["openclip_local_dir_text"] = require("open_clip local-dir: folder vs built model, text", deviation(m.encode_text(ids), oc_txt), 0.0)
            checks["openclip_local_dir_image"] = require("open_clip local-dir: folder vs built model, image", deviation(m.encode_image(images), oc_img), 0.0)

    out.mkdir(parents=True, exist_ok=True)
    written = []

    def write(name, obj):
        path = out / name
        # cases compact (they hold tensors), config files as the libraries write them (indented)
        path.write_text(json.dumps(obj, indent=None if "experiment" in obj else 2) + "\n")
        written.append((name, path.stat().st_size))

    def features_case(experiment, source, field, feats, lib, folder, model_desc):
        g = cases[source]
        return {
            "experiment": experiment,
            "description": f"{lib} {model_desc} on the golden tiny CLIP's weights; {field} of the inputs of the golden {source}, unnormalised.",
            "provenance": {"generator": "scripts/make_heads_fixtures.py", "library": lib, **prov, "model_folder": folder, "checks": checks},
            "weights": g["weights"],
            "model_config": {**g["model_config"], "heads": model_desc},
            "inputs": input_ref(golden, source),
            "outputs": {field: tensor(feats, f"{lib}: {field}, unnormalised")},
        }

    hf_desc = f"CLIPModel with text_config.num_attention_heads {HF_HEADS['text']} (32 wide), vision_config.num_attention_heads {HF_HEADS['vision']} (16 wide)"
    hf_folder = "hf_config.json as config.json beside the golden hf/model.safetensors and tokenizer.json"
    write("hf_config.json", hf_heads_cfg)
    write("hf_encode_text.json", features_case("encode_text", "encode_text.json", "text_features", hf_txt, "transformers CLIPModel.get_text_features", hf_folder, hf_desc))
    write("hf_encode_image.json", features_case("encode_image", "encode_image.json", "image_features", hf_img, "transformers CLIPModel.get_image_features", hf_folder, hf_desc))
    oc_desc = f"model_cfg text_cfg.heads {OC_TEXT_HEADS} (32 wide), vision_cfg.head_width {OC_HEAD_WIDTH} ({128 // OC_HEAD_WIDTH} heads), quick_gelu true"
    oc_folder = "openclip_config.json as open_clip_config.json beside the golden openai.safetensors renamed open_clip_model.safetensors"
    write("openclip_config.json", oc_json)
    write("openclip_encode_text.json", features_case("encode_text", "encode_text.json", "text_features", oc_txt, "open_clip CLIP.encode_text", oc_folder, oc_desc))
    write("openclip_encode_image.json", features_case("encode_image", "encode_image.json", "image_features", oc_img, "open_clip CLIP.encode_image", oc_folder, oc_desc))
    for name, size in written:
        print(f"wrote {out / name} ({size} bytes)", file=sys.stderr)


if __name__ == "__main__":
    main()
