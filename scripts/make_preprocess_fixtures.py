#!/usr/bin/env python3
"""Generate the preprocessing fixtures (crates/ntlb-clip/tests/fixtures/preprocess/).

Writes small seeded images in every mode CLIP users meet (RGB/L JPEG, RGB/L/RGBA/LA/P/1-bit PNG,
16-bit gray and RGB PNG, CMYK JPEG, up- and down-scaling, odd crops) and the tensors CLIP's own
`preprocess` gives for them (torchvision Resize(n, BICUBIC), CenterCrop(n), convert('RGB'),
ToTensor, Normalize with CLIP's mean/std, on Pillow images) in expected.safetensors.
Run: python scripts/make_preprocess_fixtures.py  (needs Pillow, torchvision, numpy, safetensors)."""
import os, struct, zlib

import numpy as np
import PIL
from PIL import Image
from safetensors.numpy import save_file
from torchvision import transforms as T

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "ntlb-clip", "tests", "fixtures", "preprocess")
N = 32
rng = np.random.default_rng(5)

def smooth(h, w, c):
    """A smooth random picture (so that resizing matters) with some sharp edges."""
    y, x = np.mgrid[0:h, 0:w]
    out = np.zeros((h, w, c))
    for k in range(c):
        a, b, p = rng.uniform(0.05, 0.4, 3)
        out[..., k] = 127 + 100 * np.sin(a * x + p) * np.cos(b * y)
    out[h // 3 : h // 2, w // 4 : w // 2] = rng.uniform(0, 255, c)
    return np.clip(out + rng.normal(0, 12, out.shape), 0, 255).astype(np.uint8)

def png16(path, arr):
    """16-bit RGB PNG (Pillow cannot write one)."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[r].astype(">u2").tobytes() for r in range(h))
    chunk = lambda t, d: struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0))
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))

def main():
    os.makedirs(OUT, exist_ok=True)
    files = {}
    files["rgb_down.png"] = Image.fromarray(smooth(45, 61, 3))
    files["rgb_up.png"] = Image.fromarray(smooth(14, 20, 3))
    files["rgb_oddcrop.png"] = Image.fromarray(smooth(50, 37, 3))
    files["rgb_large.png"] = Image.fromarray(smooth(120, 161, 3))
    files["rgb.jpg"] = Image.fromarray(smooth(71, 40, 3))
    files["gray.png"] = Image.fromarray(smooth(50, 50, 1)[..., 0], "L")
    files["gray.jpg"] = Image.fromarray(smooth(39, 52, 1)[..., 0], "L")
    rgba = smooth(33, 47, 4); rgba[..., 3] = np.linspace(0, 255, 47).astype(np.uint8)[None, :]
    files["rgba.png"] = Image.fromarray(rgba, "RGBA")
    la = smooth(40, 36, 2); la[..., 1] = np.linspace(255, 10, 40).astype(np.uint8)[:, None]
    files["la.png"] = Image.fromarray(la, "LA")
    files["palette.png"] = Image.fromarray(smooth(60, 45, 3)).quantize(colors=64)
    files["bilevel.png"] = Image.fromarray(smooth(36, 44, 1)[..., 0] > 127)
    g16 = (smooth(34, 41, 1)[..., 0].astype(np.uint16) * 2)  # values up to 510: Pillow clips at 255
    files["gray16.png"] = Image.fromarray(g16)
    files["cmyk.jpg"] = Image.fromarray(smooth(48, 42, 4), "CMYK")
    for name, im in files.items():
        kw = {"quality": 92} if name.endswith(".jpg") else {}
        im.save(os.path.join(OUT, name), **kw)
    png16(os.path.join(OUT, "rgb16.png"), smooth(30, 44, 3).astype(np.uint16) * 257 + rng.integers(0, 256, (30, 44, 3)).astype(np.uint16))
    tf = T.Compose([T.Resize(N, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(N), lambda im: im.convert("RGB"), T.ToTensor(),
                    T.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))])
    expected, modes = {}, {}
    for name in sorted(os.listdir(OUT)):
        if name.endswith((".png", ".jpg")):
            im = Image.open(os.path.join(OUT, name))
            modes[name] = im.mode
            expected[name] = tf(im).numpy().astype(np.float32)
    save_file(expected, os.path.join(OUT, "expected.safetensors"), metadata={"pillow": PIL.__version__, "modes": str(modes), "size": str(N)})
    print(modes)

if __name__ == "__main__":
    main()
