#!/usr/bin/env python3
"""Pillow + torchvision baseline of `ntlb bench pipeline`: CLIP's test-time preprocessing
(open, Resize(224, BICUBIC), CenterCrop(224), convert RGB, ToTensor, Normalize) of the same
files, one process, one thread; prints images per second and what ran.

Without torch installed, ToTensor + Normalize run in numpy (the Pillow calls, which are
nearly all of the time, are the same); the second word of the output says which."""
import sys, time

import numpy as np
from PIL import Image

files = [l for l in open(sys.argv[1]).read().splitlines() if l]
MEAN, STD = (0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711)
try:
    import torch
    from torchvision import transforms as T

    torch.set_num_threads(1)
    tf = T.Compose([T.Resize(224, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), lambda im: im.convert("RGB"),
                    T.ToTensor(), T.Normalize(MEAN, STD)])
    label = "pillow+torchvision"
except ImportError:
    mean, std = np.array(MEAN, np.float32)[:, None, None], np.array(STD, np.float32)[:, None, None]

    def tf(im):
        w, h = im.size
        size = (224, int(224 * h / w)) if w <= h else (int(224 * w / h), 224)
        if size != im.size:
            im = im.resize(size, Image.BICUBIC)
        w, h = im.size
        top, left = int(round((h - 224) / 2.0)), int(round((w - 224) / 2.0))
        x = np.asarray(im.crop((left, top, left + 224, top + 224)).convert("RGB"), np.uint8)
        return (x.transpose(2, 0, 1).astype(np.float32) / np.float32(255) - mean) / std

    label = "pillow+numpy"
t = time.perf_counter()
for f in files:
    tf(Image.open(f))
print(len(files) / (time.perf_counter() - t), label, Image.__version__)
