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
`--activation gelu` times the same step with exact (erf) GELU in both towers' MLPs instead of
QuickGELU (open_clip's non-OpenAI checkpoints); scripts/make_gelu_fixtures.py uses this file's
modules (`step_outputs`) to write the GELU CoOp fixture.

Before it times anything it runs the same objective on the golden case coop_middle.json (the
original code's own outputs, ../shared/golden or --golden / NTLB_GOLDEN) with the golden tiny CLIP
and exits with status 1 unless the loss and grad_ctx match within 1e-4: the speed claims'
denominator is checked before it is quoted. Prints one JSON object."""
import argparse, json, math, os, pathlib, statistics, sys, time

import torch
import torch.nn as nn
import torch.nn.functional as F


ACTIVATIONS = ("quick_gelu", "gelu")


def mlp_act(h, act):
    """The residual MLP's nonlinearity: OpenAI's QuickGELU, or exact erf GELU (torch's nn.GELU())."""
    if act == "quick_gelu":
        return h * torch.sigmoid(1.702 * h)
    if act == "gelu":
        return F.gelu(h, approximate="none")
    raise ValueError(f"unknown activation {act!r}")


class Block(nn.Module):
    def __init__(self, w, h, act="quick_gelu"):
        super().__init__()
        self.act = act
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
        return x + self.c_proj(mlp_act(h, self.act))


class Text(nn.Module):
    def __init__(self, w, layers, heads, embed, vocab=49408, ctx_len=77, act="quick_gelu"):
        super().__init__()
        self.tok = nn.Embedding(vocab, w)
        self.pos = nn.Parameter(torch.randn(ctx_len, w) * 0.01)
        self.blocks = nn.ModuleList([Block(w, heads, act) for _ in range(layers)])
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

    def __init__(self, width, layers, heads, patch, res, embed, act="quick_gelu"):
        super().__init__()
        self.conv1 = nn.Conv2d(3, width, patch, patch, bias=False)
        self.cls = nn.Parameter(torch.randn(width) * width ** -0.5)
        self.pos = nn.Parameter(torch.randn((res // patch) ** 2 + 1, width) * width ** -0.5)
        self.ln_pre, self.ln_post = nn.LayerNorm(width), nn.LayerNorm(width)
        self.blocks = nn.ModuleList([Block(width, heads, act) for _ in range(layers)])
        self.proj = nn.Parameter(torch.randn(width, embed) * width ** -0.5)

    def forward(self, x):
        x = self.conv1(x).flatten(2).transpose(1, 2)
        x = torch.cat([self.cls.expand(x.shape[0], 1, -1).to(x.dtype), x], 1) + self.pos
        x = self.ln_pre(x).permute(1, 0, 2)
        for b in self.blocks:
            x = b(x, None)
        return self.ln_post(x[0]) @ self.proj


def build(preset, act="quick_gelu"):
    if preset == "vit-b-32":
        return Visual(768, 12, 12, 32, 224, 512, act=act), Text(512, 12, 8, 512, act=act), 224
    return Visual(128, 2, 2, 8, 32, 64, act=act), Text(128, 2, 2, 64, act=act), 32


def step_outputs(visual, text, emb, ctx, name_lens, eot, weights, images, labels, scale):
    """The forward of the original's CoOp step (class name in the middle of the context):
    features, logits, the explainability scores and the loss terms, all in the graph of ctx."""
    dev, dt = ctx.device, ctx.dtype
    C, B, n_ctx = len(name_lens), images.shape[0], ctx.shape[0]
    half = n_ctx // 2
    prompts = []
    for c, nl in enumerate(name_lens):  # class token position "middle", as the reference loops
        pre, suf = emb[c : c + 1, :1], emb[c : c + 1, 1 + n_ctx :]
        prompts.append(torch.cat([pre, ctx[None, :half], suf[:, :nl], ctx[None, half:], suf[:, nl:]], 1))
    prompts = torch.cat(prompts)
    img_f = visual(images)
    img_f = img_f / img_f.norm(dim=-1, keepdim=True)
    txt = text(prompts, eot)
    txt_f = txt / txt.norm(dim=-1, keepdim=True)
    scores, positions, rels = [], [], []
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
        best = (rel * weights).max(-1)
        scores.append(best[0])
        positions.append(best[1])
        rels.append(rel)
    scores = torch.stack(scores)
    logits = scale * img_f @ txt_f.t()
    ce = F.cross_entropy(logits, labels)
    expl = -scores[torch.arange(B), labels].mean()
    m = scores.clone()
    m[torch.arange(B), labels] = 0
    return {"prompts": prompts, "image_features_normalized": img_f, "text_features": txt, "text_features_normalized": txt_f,
            "logits": logits, "expl_scores": scores, "expl_argmax_position": torch.stack(positions),
            "text_relevance_full": torch.stack(rels), "ce": ce, "expl_target": expl, "expl_others": m.mean()}


def objective(visual, text, emb, ctx, name_lens, eot, weights, images, labels, scale):
    """CE + expl (λ = 1, ALSO_MINIMIZE) as the original's CoOp trainer computes it, class name
    in the middle of the context."""
    o = step_outputs(visual, text, emb, ctx, name_lens, eot, weights, images, labels, scale)
    return o["ce"] + o["expl_target"] + o["expl_others"]


def name_weights(name_lens, n_ctx, dev, dt):
    """1 on each class name's positions (middle: after the first half of the context)."""
    half = n_ctx // 2
    weights = torch.zeros(len(name_lens), 77, device=dev, dtype=dt)
    for c, nl in enumerate(name_lens):
        weights[c, 1 + half : 1 + half + nl] = 1
    return weights


def load_golden_model(sd, act="quick_gelu"):
    """The golden tiny CLIP (OpenAI state-dict names) in this script's modules, with the MLP
    activation `act` (the golden weights were made for QuickGELU)."""
    visual, text, _ = build("fixture", act)

    def blocks(mods, prefix):
        for i, b in enumerate(mods):
            p = f"{prefix}transformer.resblocks.{i}."
            for mine, theirs in [("ln_1", "ln_1"), ("ln_2", "ln_2"), ("in_proj", "attn.in_proj_"), ("out_proj", "attn.out_proj"),
                                 ("c_fc", "mlp.c_fc"), ("c_proj", "mlp.c_proj")]:
                sep = "" if theirs.endswith("_") else "."
                getattr(b, mine).weight.data.copy_(sd[p + theirs + sep + "weight"])
                getattr(b, mine).bias.data.copy_(sd[p + theirs + sep + "bias"])

    text.tok.weight.data.copy_(sd["token_embedding.weight"])
    text.pos.data.copy_(sd["positional_embedding"])
    blocks(text.blocks, "")
    text.ln_final.weight.data.copy_(sd["ln_final.weight"])
    text.ln_final.bias.data.copy_(sd["ln_final.bias"])
    text.proj.data.copy_(sd["text_projection"])
    visual.conv1.weight.data.copy_(sd["visual.conv1.weight"])
    visual.cls.data.copy_(sd["visual.class_embedding"])
    visual.pos.data.copy_(sd["visual.positional_embedding"])
    for n in ("ln_pre", "ln_post"):
        getattr(visual, n).weight.data.copy_(sd[f"visual.{n}.weight"])
        getattr(visual, n).bias.data.copy_(sd[f"visual.{n}.bias"])
    blocks(visual.blocks, "visual.")
    visual.proj.data.copy_(sd["visual.proj"])
    return visual.eval(), text.eval(), math.exp(float(sd["logit_scale"]))


def golden_check(golden_dir):
    """Loss and grad_ctx of coop_middle.json from this script's objective; exits 1 on a miss."""
    from safetensors.torch import load_file

    golden_dir = pathlib.Path(golden_dir)
    case = json.loads((golden_dir / "coop_middle.json").read_text())
    cfg = case["config"]
    if cfg["TRAINER.COOP.CLASS_TOKEN_POSITION"] != "middle" or cfg["TRAINER.COOP.EXPL_WEIGHT"] != 1.0 or not cfg["TRAINER.COOP.ALSO_MINIMIZE"]:
        sys.exit(f"golden case settings {cfg} are not the ones this script times")
    t = lambda x: torch.tensor(x["data"])
    visual, text, scale = load_golden_model(load_file(str(golden_dir / "tiny-clip" / "openai.safetensors")))
    for prm in list(visual.parameters()) + list(text.parameters()):
        prm.requires_grad_(False)
    ids = t(case["outputs"]["tokenized_prompts"]).long()
    name_lens = case["outputs"]["name_lens"]["data"]
    ctx = t(case["inputs"]["ctx"]).float().requires_grad_(True)
    loss = objective(visual, text, text.tok(ids), ctx, name_lens, ids.argmax(-1), name_weights(name_lens, ctx.shape[0], "cpu", torch.float32),
                     t(case["inputs"]["images"]).float(), t(case["inputs"]["labels"]).long(), torch.tensor(scale))
    loss.backward()
    loss_err = abs(loss.item() - case["outputs"]["total_loss"]["data"])
    grad_err = (ctx.grad - t(case["outputs"]["grad_ctx"])).abs().max().item()
    result = {"case": "coop_middle.json", "loss_abs_err": loss_err, "grad_ctx_max_abs_err": grad_err, "tolerance": 1e-4}
    if not (loss_err <= 1e-4 and grad_err <= 1e-4):
        sys.exit(f"bench_reference_step.py does not reproduce the golden case, not timing: {json.dumps(result)}")
    return result


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--preset", default="fixture")
    p.add_argument("--classes", type=int, default=10)
    p.add_argument("--batch", type=int, default=4)
    p.add_argument("--reps", type=int, default=1)
    p.add_argument("--device", default="cpu")
    p.add_argument("--dtype", default="float32")
    p.add_argument("--activation", default="quick_gelu", choices=ACTIVATIONS, help="MLP activation of the timed model (the golden check is QuickGELU, as the original)")
    default_golden = os.environ.get("NTLB_GOLDEN") or str(pathlib.Path(__file__).resolve().parents[1] / ".." / "shared" / "golden")
    p.add_argument("--golden", default=default_golden, help="folder with coop_middle.json and tiny-clip/")
    a = p.parse_args()
    if not (pathlib.Path(a.golden) / "coop_middle.json").exists():
        sys.exit(f"golden case not found at {a.golden}/coop_middle.json (--golden or NTLB_GOLDEN): the reference is not timed unchecked")
    check = golden_check(a.golden)
    torch.manual_seed(0)
    dev, dt = torch.device(a.device), getattr(torch, a.dtype)
    visual, text, res = build(a.preset, a.activation)
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
    weights = name_weights(name_lens, n_ctx, dev, dt)
    images = torch.randn(B, 3, res, res, device=dev, dtype=dt)
    labels = (torch.arange(B) % C).to(dev)
    scale = torch.tensor(100.0, device=dev, dtype=dt)

    def step():
        loss = objective(visual, text, emb, ctx, name_lens, eot, weights, images, labels, scale)
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
                      "device": a.device, "dtype": a.dtype, "activation": a.activation, "threads": torch.get_num_threads(),
                      "seconds_per_step": statistics.median(ts), "golden_check": check}))


if __name__ == "__main__":
    main()
