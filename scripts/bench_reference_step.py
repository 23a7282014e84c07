#!/usr/bin/env python3
"""The original NTLB training step, re-implemented in PyTorch for timing (`ntlb bench
train-step --reference`, and scripts/gpu-check.sh on the GPU).

It follows apple/ml-no-token-left-behind's CoOp trainer (CustomCLIP.forward with return_expl,
get_classname_expl_score, CoOp.forward_backward): the text encoder runs all 77 positions once
with attention probabilities kept in the graph; then, for every image, the image is repeated
once per class and re-encoded, S = sum of the diagonal logits, and each text layer's
probability gradient is taken with its own autograd.grad(retain_graph=True); relevance
R <- R + cam R over full 77x77 matrices; then CE + lambda * expl, backward, SGD step.
Random weights of the requested architecture (CLIP's ViT written out here, torch only).
Prints one JSON object."""
import argparse, json, math, statistics, time

import torch
import torch.nn as nn
import torch.nn.functional as F


class Block(nn.Module):
    def __init__(self, w, h):
        super().__init__()
        self.ln_1, self.ln_2 = nn.LayerNorm(w), nn.LayerNorm(w)
        self.h = h
        self.in_proj = nn.Linear(w, 3 * w)
        self.out_proj = nn.Linear(w, w)
        self.c_fc, self.c_proj = nn.Linear(w, 4 * w), nn.Linear(4 * w, w)
        self.attn_probs = None

    def forward(self, x, mask):
        L, N, W = x.shape
        q, k, v = self.in_proj(self.ln_1(x)).chunk(3, dim=-1)
        q, k, v = (t.reshape(L, N * self.h, W // self.h).transpose(0, 1) for t in (q, k, v))
        scores = torch.bmm(q * (W // self.h) ** -0.5, k.transpose(1, 2))
        probs = torch.softmax(scores if mask is None else scores + mask, dim=-1)
        self.attn_probs = probs  # [N*H, L, L] in the graph, as the reference fork's attn_output_weights
        out = torch.bmm(probs, v).transpose(0, 1).reshape(L, N, W)
        x = x + self.out_proj(out)
        h = self.c_fc(self.ln_2(x))
        return x + self.c_proj(h * torch.sigmoid(1.702 * h))


class Text(nn.Module):
    def __init__(self, w, layers, heads, embed, vocab=49408, ctx_len=77):
        super().__init__()
        self.tok = nn.Embedding(vocab, w)
        self.pos = nn.Parameter(torch.randn(ctx_len, w) * 0.01)
        self.blocks = nn.ModuleList([Block(w, heads) for _ in range(layers)])
        self.ln_final = nn.LayerNorm(w)
        self.proj = nn.Parameter(torch.randn(w, embed) * w ** -0.5)
        self.register_buffer("mask", torch.full((ctx_len, ctx_len), float("-inf")).triu(1))

    def forward(self, prompts, eot):
        x = (prompts + self.pos).permute(1, 0, 2)
        for b in self.blocks:
            x = b(x, self.mask)
        x = self.ln_final(x.permute(1, 0, 2))
        return x[torch.arange(x.shape[0]), eot] @ self.proj


class Visual(nn.Module):
    """CLIP's VisionTransformer (the same computation as OpenAI's / open_clip's), so that the
    script needs nothing but torch."""

    def __init__(self, width, layers, heads, patch, res, embed):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, patch, patch, bias=False)
        self.cls = nn.Parameter(torch.randn(width) * width ** -0.5)
        self.pos = nn.Parameter(torch.randn((res // patch) ** 2 + 1, width) * width ** -0.5)
        self.ln_pre, self.ln_post = nn.LayerNorm(width), nn.LayerNorm(width)
        self.blocks = nn.ModuleList([Block(width, heads) for _ in range(layers)])
        self.proj = nn.Parameter(torch.randn(width, embed) * width ** -0.5)

    def forward(self, x):
        x = self.conv1(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], 1, -1).to(x.dtype), x], 1) + self.pos
        x = self.ln_pre(x).permute(1, 0, 2)
        for b in self.blocks:
            x = b(x, None)
        return self.ln_post(x[0]) @ self.proj


def build(preset):
    if preset == "vit-b-32":
        return Visual(768, 12, 12, 32, 224, 512), Text(512, 12, 8, 512), 224
    return Visual(128, 2, 2, 8, 32, 64), Text(128, 2, 2, 64), 32


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="fixture")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    a = p.parse_args()
    torch.manual_seed(0)
    dev, dt = torch.device(a.device), getattr(torch, a.dtype)
    visual, text, res = build(a.preset)
    visual, text = visual.to(dev, dt).eval(), text.to(dev, dt).eval()
    for prm in list(visual.parameters()) + list(text.parameters()):
        prm.requires_grad_(False)
    C, B, n_ctx, W = a.classes, a.batch, 16, text.ln_final.weight.shape[0]
    g = torch.Generator().manual_seed(1)
    name_lens = torch.randint(1, 4, (C,), generator=g).tolist()
    ids = torch.zeros(C, 77, dtype=torch.long)
    for c, nl in enumerate(name_lens):
        row = [49406] + [343] * n_ctx + torch.randint(1000, 40000, (nl,), generator=g).tolist() + [269, 49407]
        ids[c, : len(row)] = torch.tensor(row)
    ids = ids.to(dev)
    eot = ids.argmax(-1)
    emb = text.tok(ids).detach()
    ctx = nn.Parameter(torch.randn(n_ctx, W, device=dev, dtype=dt) * 0.02)
    opt = torch.optim.SGD([ctx], lr=0.002, momentum=0.9, weight_decay=5e-4)
    half = n_ctx // 2
    weights = torch.zeros(C, 77, device=dev, dtype=dt)
    for c, nl in enumerate(name_lens):
        weights[c, 1 + half : 1 + half + nl] = 1
    images = torch.randn(B, 3, res, res, device=dev, dtype=dt)
    labels = (torch.arange(B) % C).to(dev)
    scale = torch.tensor(100.0, device=dev, dtype=dt)

    def step():
        prompts = []
        for c, nl in enumerate(name_lens):  # class token position "middle", as the reference loops
            pre, suf = emb[c : c + 1, :1], emb[c : c + 1, 1 + n_ctx :]
            prompts.append(torch.cat([pre, ctx[None, :half], suf[:, :nl], ctx[None, half:], suf[:, nl:]], 1))
        prompts = torch.cat(prompts)
        img_f = visual(images)
        img_f = img_f / img_f.norm(dim=-1, keepdim=True)
        txt_f = text(prompts, eot)
        txt_f = txt_f / txt_f.norm(dim=-1, keepdim=True)
        scores = []
        for img in images:
            rep = img[None].repeat(C, 1, 1, 1)
            f = visual(rep)
            f = f / f.norm(dim=-1, keepdim=True)
            lp = scale * f @ txt_f.t()
            one_hot = torch.diagonal(lp).sum()
            R = torch.eye(77, device=dev, dtype=dt)[None].expand(C, 77, 77)
            for blk in text.blocks:
                grad = torch.autograd.grad(one_hot, [blk.attn_probs], retain_graph=True)[0]
                cam = (grad * blk.attn_probs).reshape(C, -1, 77, 77).clamp(min=0).mean(dim=1)
                R = R + torch.bmm(cam, R)
            rel = R[torch.arange(C), eot].clone()
            rel[torch.arange(C), eot] = 0
            rel = rel / rel.sum(-1, keepdim=True)
            scores.append((rel * weights).max(-1)[0])
        scores = torch.stack(scores)
        logits = scale * img_f @ txt_f.t()
        ce = F.cross_entropy(logits, labels)
        expl = -scores[torch.arange(B), labels].mean()
        m = scores.clone()
        m[torch.arange(B), labels] = 0
        loss = ce + expl + m.mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if dev.type == "cuda":
            torch.cuda.synchronize()

    step()
    ts = []
    for _ in range(max(a.reps, 1)):
        t = time.perf_counter(); step(); ts.append(time.perf_counter() - t)
    print(json.dumps({"impl": "reference-algorithm (PyTorch)", "preset": a.preset, "classes": C, "batch": B,
                      "device": a.device, "dtype": a.dtype, "threads": torch.get_num_threads(),
                      "seconds_per_step": statistics.median(ts)}))


if __name__ == "__main__":
    main()
