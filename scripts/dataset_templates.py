#!/usr/bin/env python3
"""Write datasets/templates/<kind>/{clip,coop}.txt.

clip.txt: CLIP's published zero-shot templates of the set: the `templates` list of its section
in openai/CLIP `data/prompts.md` (the ten CoOp sets), or the 80 ImageNet templates of CLIP's
notebook (`datasets/imagenet_templates_80.txt`) for ImageNet and its four variants, which CLIP
evaluates with the ImageNet templates.
coop.txt: CoOp's per-dataset zero-shot prompt, `CUSTOM_TEMPLATES` of `trainers/zsclip.py`
(identical in KaiyangZhou/CoOp ff61507 and the NTLB reference); the Rust registry holds the same
string (`DatasetSpec::prompt`) and a test keeps the two equal.

usage: scripts/dataset_templates.py PATH/TO/openai-CLIP/data/prompts.md
"""
import ast
import pathlib
import re
import shutil
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
OUT = ROOT / "datasets" / "templates"

# CLIP prompts.md section -> ntlb kind
CLIP_SECTIONS = {
    "Caltech101": "caltech101",
    "OxfordPets": "oxford-pets",
    "StanfordCars": "stanford-cars",
    "Flowers102": "oxford-flowers",
    "Food101": "food101",
    "FGVCAircraft": "fgvc-aircraft",
    "SUN397": "sun397",
    "DescribableTextures": "dtd",
    "EuroSAT": "eurosat",
    "UCF101": "ucf101",
}
IMAGENET_KINDS = ["imagenet", "imagenet-v2", "imagenet-sketch", "imagenet-a", "imagenet-r"]

# CoOp trainers/zsclip.py CUSTOM_TEMPLATES, by ntlb kind.
CUSTOM_TEMPLATES = {
    "oxford-pets": "a photo of a {}, a type of pet.",
    "oxford-flowers": "a photo of a {}, a type of flower.",
    "fgvc-aircraft": "a photo of a {}, a type of aircraft.",
    "dtd": "{} texture.",
    "eurosat": "a centered satellite photo of {}.",
    "stanford-cars": "a photo of a {}.",
    "food101": "a photo of {}, a type of food.",
    "sun397": "a photo of a {}.",
    "caltech101": "a photo of a {}.",
    "ucf101": "a photo of a person doing {}.",
    "imagenet": "a photo of a {}.",
    "imagenet-sketch": "a photo of a {}.",
    "imagenet-v2": "a photo of a {}.",
    "imagenet-a": "a photo of a {}.",
    "imagenet-r": "a photo of a {}.",
}


def clip_sections(text):
    out = {}
    for m in re.finditer(r"^## (\S+)\n(.*?)(?=^## |\Z)", text, re.S | re.M):
        t = re.search(r"templates = (\[.*?\n\])", m.group(2), re.S)
        if t:
            out[m.group(1)] = ast.literal_eval(t.group(1))
    return out


def write(kind, name, lines):
    d = OUT / kind
    d.mkdir(parents=True, exist_ok=True)
    for l in lines:
        assert l.count("{}") == 1, (kind, l)
    (d / name).write_text("".join(l + "\n" for l in lines))


def main():
    sections = clip_sections(pathlib.Path(sys.argv[1]).read_text())
    for section, kind in CLIP_SECTIONS.items():
        write(kind, "clip.txt", sections[section])
    for kind in IMAGENET_KINDS:
        (OUT / kind).mkdir(parents=True, exist_ok=True)
        shutil.copyfile(ROOT / "datasets" / "imagenet_templates_80.txt", OUT / kind / "clip.txt")
    for kind, t in CUSTOM_TEMPLATES.items():
        write(kind, "coop.txt", [t])


if __name__ == "__main__":
    main()
