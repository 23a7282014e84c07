#!/usr/bin/env python3
"""Generate the preprocessing fixtures (crates/ntlb-clip/tests/fixtures/preprocess/).

Writes small seeded images in every mode CLIP users meet (RGB/L JPEG at every subsampling,
progressive, restart markers, CMYK with and without an Adobe marker, YCCK, a short APP14, EXIF
orientation; RGB/L/RGBA/LA/P/1-bit PNG, 16-bit gray and RGB PNG, tRNS on RGB/L/16-bit, tall and
wide shapes on both sides of Pillow 13's pass-order rule) and the tensors the reference gives:

- expected.safetensors: CLIP's own `preprocess` (Resize(n, BICUBIC), CenterCrop(n),
  convert('RGB'), ToTensor, Normalize with CLIP's mean/std, on Pillow images);
- expected_dassl.safetensors: Dassl's order, which the NTLB/CoOp code uses: `convert('RGB')` right
  after `Image.open`, then the same transform.

torchvision's Resize/CenterCrop/ToTensor/Normalize on a PIL image are reproduced here in numpy
(the same Pillow calls, the same float32 arithmetic) so that torch is not needed; the tensors of
the files the earlier torchvision version of this script made are unchanged by it.
Run: python scripts/make_preprocess_fixtures.py  (needs Pillow 13.0.0, numpy, safetensors)."""
import io, os, struct, zlib

import numpy as np
import PIL
from PIL import Image
from safetensors.numpy import save_file

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "ntlb-clip", "tests", "fixtures", "preprocess")
N = 32
MEAN = np.array((0.48145466, 0.4578275, 0.40821073), np.float32)[:, None, None]
STD = np.array((0.26862954, 0.26130258, 0.27577711), np.float32)[:, None, None]
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


def chunk(t, d):
    return struct.pack(">I", len(d)) + t + d + struct.pack(">I", zlib.crc32(t + d) & 0xFFFFFFFF)


def png16(path, arr, trns=None):
    """16-bit RGB PNG (Pillow cannot write one), optionally with a tRNS colour."""
    h, w, _ = arr.shape
    raw = b"".join(b"\x00" + arr[r].astype(">u2").tobytes() for r in range(h))
    extra = chunk(b"tRNS", struct.pack(">HHH", *trns)) if trns else b""
    with open(path, "wb") as f:
        f.write(b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", w, h, 16, 2, 0, 0, 0)) + extra
                + chunk(b"IDAT", zlib.compress(raw)) + chunk(b"IEND", b""))


def jpeg_bytes(im, **kw):
    b = io.BytesIO()
    im.save(b, "JPEG", **kw)
    return b.getvalue()


def segments(data):
    """(offset, marker, length) of the header segments up to the first SOS."""
    i, out = 2, []
    while data[i] == 0xFF and data[i + 1] != 0xDA:
        n = struct.unpack(">H", data[i + 2 : i + 4])[0]
        out.append((i, data[i + 1], n + 2))
        i += n + 2
    return out


def without_app14(data):
    for off, m, n in segments(data):
        if m == 0xEE:
            return data[:off] + data[off + n :]
    raise ValueError("no APP14")


def adobe_transform(data, t):
    """Set the Adobe APP14 transform byte: 2 turns a 4-component file into YCCK for the decoder."""
    for off, m, n in segments(data):
        if m == 0xEE and data[off + 4 : off + 9] == b"Adobe":
            return data[: off + 15] + bytes([t]) + data[off + 16 :]
    raise ValueError("no Adobe APP14")


def write_jpegs(files_bytes):
    """JPEG cases, each made with Pillow's own encoder (libjpeg-turbo)."""
    stripes = np.zeros((4, 4, 3), np.uint8)
    stripes[:, ::2] = (255, 0, 0)
    stripes[:, 1::2] = (0, 0, 255)
    files_bytes["stripes_420.jpg"] = jpeg_bytes(Image.fromarray(stripes), quality=95, subsampling=2)
    files_bytes["rgb_420.jpg"] = jpeg_bytes(Image.fromarray(smooth(75, 53, 3)), quality=90, subsampling=2)
    files_bytes["rgb_422.jpg"] = jpeg_bytes(Image.fromarray(smooth(45, 70, 3)), quality=90, subsampling=1)
    files_bytes["rgb_444.jpg"] = jpeg_bytes(Image.fromarray(smooth(51, 47, 3)), quality=90, subsampling=0)
    files_bytes["progressive.jpg"] = jpeg_bytes(Image.fromarray(smooth(67, 59, 3)), quality=85, progressive=True)
    files_bytes["restart.jpg"] = jpeg_bytes(Image.fromarray(smooth(64, 81, 3)), quality=90, restart_marker_blocks=3)
    files_bytes["gray_prog.jpg"] = jpeg_bytes(Image.fromarray(smooth(41, 57, 1)[..., 0], "L"), quality=88, progressive=True)
    cmyk = jpeg_bytes(Image.fromarray(smooth(44, 38, 4), "CMYK"), quality=90)
    files_bytes["cmyk_no_adobe.jpg"] = without_app14(cmyk)
    files_bytes["ycck.jpg"] = adobe_transform(jpeg_bytes(Image.fromarray(smooth(50, 43, 4), "CMYK"), quality=90), 2)
    base = jpeg_bytes(Image.fromarray(smooth(37, 49, 3)), quality=90)
    files_bytes["short_app14.jpg"] = base[:2] + b"\xff\xee\x00\x0dAdobe\x00\x64\x40\x00\x00\x00" + base[2:]
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90: Pillow's open() and CLIP's transform do not apply it
    files_bytes["exif_rot6.jpg"] = jpeg_bytes(Image.fromarray(smooth(30, 52, 3)), quality=90, exif=exif)


def clip_transform(im, n, convert_first):
    """torchvision Resize(n, BICUBIC) + CenterCrop(n) (+ convert) + ToTensor + Normalize on PIL."""
    if convert_first:
        im = im.convert("RGB")
    w, h = im.size
    short, long = (w, h) if w <= h else (h, w)
    new_short, new_long = n, int(n * long / short)
    size = (new_short, new_long) if w <= h else (new_long, new_short)
    if size != (w, h):
        im = im.resize(size, Image.BICUBIC)
    w, h = im.size
    top, left = int(round((h - n) / 2.0)), int(round((w - n) / 2.0))
    im = im.crop((left, top, left + n, top + n)).convert("RGB")
    x = np.asarray(im, np.uint8).transpose(2, 0, 1).astype(np.float32) / np.float32(255)
    return np.ascontiguousarray((x - MEAN) / STD, np.float32)


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

    # tRNS: Pillow keeps mode RGB / L / I;16 and convert("RGB") ignores the transparency.
    a = smooth(40, 48, 3); a[:, :20] = (0, 255, 52)
    Image.fromarray(a).save(os.path.join(OUT, "trns_rgb.png"), transparency=(0, 255, 52))
    g = smooth(44, 39, 1)[..., 0]; g[10:30, 5:25] = 77
    Image.fromarray(g, "L").save(os.path.join(OUT, "trns_gray.png"), transparency=77)
    g16 = smooth(37, 45, 1)[..., 0].astype(np.uint16) * 2; g16[:, 30:] = 300
    Image.fromarray(g16).save(os.path.join(OUT, "trns_gray16.png"), transparency=300)
    r16 = smooth(33, 29, 3).astype(np.uint16) * 257; r16[5:20, 5:20] = (1000, 2000, 3000)
    png16(os.path.join(OUT, "trns_rgb16.png"), r16, trns=(1000, 2000, 3000))

    # Pass order (Pillow 13 ImagingResampleInner): vertical first iff the height shrinks by more than
    # twice what the width shrinks. At n = 32, 48x96 -> 32x64 is the tie (horizontal first), 48x97 ->
    # 32x64 vertical first; tall RGBA and I;16 take the same rule; wide shapes stay horizontal first.
    Image.fromarray(smooth(96, 48, 3)).save(os.path.join(OUT, "order_tie_48x96.png"))
    Image.fromarray(smooth(97, 48, 3)).save(os.path.join(OUT, "order_vfirst_48x97.png"))
    Image.fromarray(smooth(170, 40, 3)).save(os.path.join(OUT, "order_tall_40x170.png"))
    Image.fromarray(smooth(40, 170, 3)).save(os.path.join(OUT, "order_wide_170x40.png"))
    t = smooth(150, 41, 4); t[..., 3] = np.linspace(30, 255, 150).astype(np.uint8)[:, None]
    Image.fromarray(t, "RGBA").save(os.path.join(OUT, "order_tall_rgba.png"))
    Image.fromarray(smooth(140, 36, 1)[..., 0].astype(np.uint16) * 2).save(os.path.join(OUT, "order_tall_gray16.png"))

    jb = {}
    write_jpegs(jb)
    for name, data in jb.items():
        with open(os.path.join(OUT, name), "wb") as f:
            f.write(data)

    expected, dassl, modes = {}, {}, {}
    for name in sorted(os.listdir(OUT)):
        if name.endswith((".png", ".jpg")):
            im = Image.open(os.path.join(OUT, name))
            modes[name] = im.mode
            expected[name] = clip_transform(im, N, False)
            dassl[name] = clip_transform(Image.open(os.path.join(OUT, name)), N, True)
    meta = {"pillow": PIL.__version__, "modes": str(modes), "size": str(N)}
    save_file(expected, os.path.join(OUT, "expected.safetensors"), metadata=meta)
    save_file(dassl, os.path.join(OUT, "expected_dassl.safetensors"), metadata={**meta, "order": "convert-first"})
    print(modes)


if __name__ == "__main__":
    main()
