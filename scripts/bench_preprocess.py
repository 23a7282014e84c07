#!/usr/bin/env python3
"""Pillow + torchvision baseline of `ntlb bench pipeline`: CLIP's test-time preprocessing
(open, Resize(224, BICUBIC), CenterCrop(224), convert RGB, ToTensor, Normalize) of the same
files, one process, one thread; prints images per second."""
import sys, time

import torch
from PIL import Image
from torchvision import transforms as T

torch.set_num_threads(1)
files = [l for l in open(sys.argv[1]).read().splitlines() if l]
tf = T.Compose([T.Resize(224, interpolation=T.InterpolationMode.BICUBIC), T.CenterCrop(224), lambda im: im.convert("RGB"), T.ToTensor(),
                T.Normalize((0.48145466, 0.4578275, 0.40821073), (0.26862954, 0.26130258, 0.27577711))])
t = time.perf_counter()
for f in files:
    tf(Image.open(f))
print(len(files) / (time.perf_counter() - t))
