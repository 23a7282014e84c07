#!/usr/bin/env python3
"""Generate the WebP fixtures (crates/ntlb-clip/tests/fixtures/webp/).

Small seeded images written by Pillow's own WebP encoder (the libwebp it bundles): lossless RGB
and RGBA, lossy RGB at three qualities and two encoder methods, lossy with an alpha plane (kept
lossless, and quantised + filtered by alpha_quality), odd and tiny sizes (1x1, 17x3, 3x29: the
edges of the 4:2:0 chroma upsampling), a VP8X file holding EXIF and ICC chunks, and a
two-frame animation (Image.open shows the first frame). Beside them:

- decoded.safetensors: the pixels Pillow decodes, `np.asarray(Image.open(f))` as uint8 HxWxC
  (mode RGB: C=3, mode RGBA: C=4; the modes are in the metadata);
- expected.safetensors / expected_dassl.safetensors: CLIP's test-time tensor at n=32 in CLIP's
  order and in Dassl's (`convert('RGB')` first), as scripts/make_preprocess_fixtures.py makes
  them for PNG and JPEG (the same transform, imported from there).

Run: python scripts/make_webp_fixtures.py  (needs Pillow 13.0.0 with its bundled libwebp 1.6.0,
numpy, safetensors)."""
import io, os, sys

import numpy as np
import PIL
from PIL import Image, features
from safetensors.numpy import save_file

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import make_preprocess_fixtures as mpf  # noqa: E402  (clip_transform, smooth)

OUT = os.path.join(os.path.dirname(__file__), "..", "crates", "ntlb-clip", "tests", "fixtures", "webp")
N = 32
mpf.rng = np.random.default_rng(20)  # this script's own stream for `smooth`
smooth = mpf.smooth


def webp(im, **kw):
    b = io.BytesIO()
    im.save(b, "WEBP", **kw)
    return b.getvalue()


def with_alpha(h, w, transparent_block=True):
    a = smooth(h, w, 4)
    a[..., 3] = np.linspace(0, 255, w).astype(np.uint8)[None, :]
    if transparent_block:
        a[: h // 3, : w // 3, 3] = 0
    return Image.fromarray(a, "RGBA")


def main():
    os.makedirs(OUT, exist_ok=True)
    for f in os.listdir(OUT):
        os.remove(os.path.join(OUT, f))
    files = {}
    rgb = Image.fromarray(smooth(37, 45, 3))
    files["lossless_rgb.webp"] = webp(rgb, lossless=True)
    # exact=True keeps the colours under alpha 0 (Dassl's order reads them: convert('RGB') first).
    files["lossless_rgba.webp"] = webp(with_alpha(33, 47), lossless=True, exact=True)
    files["lossless_1x1.webp"] = webp(Image.fromarray(smooth(1, 1, 3)), lossless=True)
    photo = Image.fromarray(smooth(41, 53, 3))
    for q in (30, 75, 95):
        files[f"lossy_q{q}.webp"] = webp(photo, quality=q)
    files["lossy_q80_m0.webp"] = webp(Image.fromarray(smooth(64, 48, 3)), quality=80, method=0)
    files["lossy_q80_m6.webp"] = webp(Image.fromarray(smooth(120, 161, 3)), quality=80, method=6)
    files["lossy_1x1.webp"] = webp(Image.fromarray(smooth(1, 1, 3)), quality=80)
    files["lossy_17x3.webp"] = webp(Image.fromarray(smooth(3, 17, 3)), quality=80)
    files["lossy_3x29.webp"] = webp(Image.fromarray(smooth(29, 3, 3)), quality=80)
    files["lossy_alpha.webp"] = webp(with_alpha(39, 51), quality=80, alpha_quality=100, exact=True)
    files["lossy_alpha_aq40.webp"] = webp(with_alpha(45, 35), quality=70, alpha_quality=40)
    files["lossy_alpha_odd.webp"] = webp(with_alpha(19, 27, False), quality=60, exact=True)
    exif = Image.Exif()
    exif[0x0112] = 6  # orientation: Pillow's open() and CLIP's transform do not apply it
    icc = b"\x00" * 128  # an opaque ICC blob: Pillow keeps it in .info and does not apply it
    files["lossy_vp8x_exif_icc.webp"] = webp(Image.fromarray(smooth(30, 44, 3)), quality=85, exif=exif, icc_profile=icc)
    frames = [Image.fromarray(smooth(36, 40, 3)), Image.fromarray(smooth(36, 40, 3))]
    files["animated_2frames.webp"] = webp(frames[0], save_all=True, append_images=frames[1:], duration=100, quality=80)

    decoded, expected, dassl, modes = {}, {}, {}, {}
    for name, data in sorted(files.items()):
        path = os.path.join(OUT, name)
        with open(path, "wb") as f:
            f.write(data)
        im = Image.open(path)
        modes[name] = im.mode
        decoded[name] = np.ascontiguousarray(np.asarray(im, np.uint8))
        expected[name] = mpf.clip_transform(Image.open(path), N, False)
        dassl[name] = mpf.clip_transform(Image.open(path), N, True)
    assert modes["animated_2frames.webp"] == "RGB" and Image.open(os.path.join(OUT, "animated_2frames.webp")).n_frames == 2
    meta = {"pillow": PIL.__version__, "libwebp": str(features.version("webp")), "modes": str(modes), "size": str(N)}
    save_file(decoded, os.path.join(OUT, "decoded.safetensors"), metadata=meta)
    save_file(expected, os.path.join(OUT, "expected.safetensors"), metadata=meta)
    save_file(dassl, os.path.join(OUT, "expected_dassl.safetensors"), metadata={**meta, "order": "convert-first"})
    print(meta)


if __name__ == "__main__":
    main()
