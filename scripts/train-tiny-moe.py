#!/usr/bin/env python3
"""Trains a small Mixtral-style mixture-of-experts model on token ids and exports a Hugging Face folder.

A test fixture for PruneLens's expert tools, not part of the product (which needs no Python). Needs
PyTorch (Debian: `apt-get install python3-torch`, then run with /usr/bin/python3).

The model is Hugging Face's Mixtral (modeling_mixtral.py): RMSNorm, rotary embeddings (rotate_half),
causal attention, and in every layer a sparse MoE block: router logits -> softmax over all experts ->
top-k -> the k weights renormalised to sum 1 -> each chosen SwiGLU expert's output times its weight.
Training adds the load-balancing loss of every layer (router_aux_loss_coef, Mixtral-8x7B's 0.02 by
default). Embeddings are tied.

The token ids come from scripts/dump-token-ids.ts (the engine's own tokenizer), so training, the
engine's calibration and its evaluation see the same ids:

  npx esbuild scripts/dump-token-ids.ts --bundle --platform=node --format=cjs --target=node20 \
      --external:onnxruntime-node --outfile=out/dump-token-ids.js
  node out/dump-token-ids.js models/stories260K data/tinystories/calibration.txt /tmp/moe/calibration.bin
  node out/dump-token-ids.js models/stories260K data/tinystories/eval.txt /tmp/moe/eval.bin
  nice -n 19 /usr/bin/python3 scripts/train-tiny-moe.py --train /tmp/moe/calibration.bin \
      --eval /tmp/moe/eval.bin --out models/tinystories-moe-379K --steps 1200 --seqlen 128 --batch 8 --eval-windows 32
"""
import argparse
import json
import math
import os
import shutil
import struct
import time

import numpy as np
import torch
import torch.nn.functional as F


def rope_tables(T, hd, theta):
    inv_freq = 1.0 / (theta ** (torch.arange(0, hd, 2, dtype=torch.float64) / hd))
    freqs = torch.outer(torch.arange(T, dtype=torch.float64), inv_freq)
    emb = torch.cat([freqs, freqs], dim=-1)
    return emb.cos().float(), emb.sin().float()


def rotate_half(x):
    h = x.shape[-1] // 2
    return torch.cat([-x[..., h:], x[..., :h]], dim=-1)


def rmsnorm(x, w, eps):
    return x * torch.rsqrt(x.pow(2).mean(-1, keepdim=True) + eps) * w


class TinyMixtral(torch.nn.Module):
    def __init__(self, cfg, seed):
        super().__init__()
        g = torch.Generator().manual_seed(seed)
        d, f, v, L, E = cfg['hidden'], cfg['intermediate'], cfg['vocab'], cfg['layers'], cfg['experts']
        std, out_std = 0.02, 0.02 / math.sqrt(2 * L)
        P = lambda *shape, s=std: torch.nn.Parameter(torch.randn(*shape, generator=g) * s)  # noqa: E731
        ones = lambda n: torch.nn.Parameter(torch.ones(n))  # noqa: E731
        self.cfg = cfg
        self.embed = P(v, d)
        self.layers = torch.nn.ModuleList()
        for _ in range(L):
            m = torch.nn.Module()
            m.ln1, m.ln2 = ones(d), ones(d)
            m.wq, m.wk, m.wv, m.wo = P(d, d), P(d, d), P(d, d), P(d, d, s=out_std)
            m.router = P(E, d)
            # Experts stacked: w1 (gate) and w3 (up) [E, f, d], w2 (down) [E, d, f] (HF's names).
            m.w1, m.w3, m.w2 = P(E, f, d), P(E, f, d), P(E, d, f, s=out_std)
            self.layers.append(m)
        self.norm = ones(d)

    def moe(self, m, x):
        """x [N, d] -> (out [N, d], router logits [N, E]); each expert runs on its routed tokens only, as HF does."""
        logits = x @ m.router.t()
        probs = F.softmax(logits, dim=-1, dtype=torch.float)
        top, idx = torch.topk(probs, self.cfg['top_k'], dim=-1)
        top = top / top.sum(dim=-1, keepdim=True)
        out = torch.zeros_like(x)
        for j in range(self.cfg['experts']):
            tok, slot = torch.where(idx == j)
            if tok.numel() == 0:
                continue
            xe = x[tok]
            y = (F.silu(xe @ m.w1[j].t()) * (xe @ m.w3[j].t())) @ m.w2[j].t()
            out = out.index_add(0, tok, y * top[tok, slot, None])
        return out, logits

    def forward(self, ids):
        B, T = ids.shape
        cfg = self.cfg
        d, H = cfg['hidden'], cfg['heads']
        hd = d // H
        cos, sin = rope_tables(T, hd, cfg['rope_theta'])
        mask = torch.full((T, T), float('-inf')).triu(1)
        x = self.embed[ids]
        router_logits = []
        for m in self.layers:
            a = rmsnorm(x, m.ln1, cfg['eps'])
            q = (a @ m.wq.t()).view(B, T, H, hd).transpose(1, 2)
            k = (a @ m.wk.t()).view(B, T, H, hd).transpose(1, 2)
            v = (a @ m.wv.t()).view(B, T, H, hd).transpose(1, 2)
            q = q * cos + rotate_half(q) * sin
            k = k * cos + rotate_half(k) * sin
            att = F.softmax(q @ k.transpose(-1, -2) / math.sqrt(hd) + mask, dim=-1)
            x = x + ((att @ v).transpose(1, 2).reshape(B, T, d) @ m.wo.t())
            out, logits = self.moe(m, rmsnorm(x, m.ln2, cfg['eps']).reshape(B * T, d))
            x = x + out.view(B, T, d)
            router_logits.append(logits)
        return rmsnorm(x, self.norm, cfg['eps']) @ self.embed.t(), router_logits


def load_balancing_loss(router_logits, E, k):
    """The Switch/GShard load-balancing loss of each layer (E x sum_j f_j P_j, with f over the k slots as
    transformers' load_balancing_loss_func counts them), averaged over the layers.

    Per layer, as Switch Transformer, GShard, Megatron-LM and OLMoE compute it: transformers' function
    concatenates every layer's router logits first, which pools expert j of all layers into one share.
    Expert indices of different layers are unrelated, so a layer can route 60% of its tokens to one
    expert while another layer starves the same index, and the pooled loss still reads 'balanced'
    (the first fixture trained that way ended with per-layer shares from 1% to 60%)."""
    total = 0.0
    for logits in router_logits:
        probs = F.softmax(logits, dim=-1)
        _, selected = torch.topk(probs, k, dim=-1)
        mask = F.one_hot(selected, E).float()
        tokens_per_expert = mask.mean(dim=0)
        prob_per_expert = probs.mean(dim=0)
        total = total + (tokens_per_expert * prob_per_expert.unsqueeze(0)).sum() * E
    return total / len(router_logits)


def read_ids(path):
    return np.fromfile(path, dtype='<i4').astype(np.int64)


@torch.no_grad()
def eval_loss(model, ids, seqlen, windows):
    """The engine's protocol: non-overlapping windows of seqlen, each predicting its seqlen - 1 targets."""
    n = min(windows, len(ids) // seqlen)
    total = 0.0
    for w in range(n):
        x = torch.from_numpy(ids[w * seqlen:(w + 1) * seqlen]).unsqueeze(0)
        logits, _ = model(x)
        total += F.cross_entropy(logits[0, :-1].double(), x[0, 1:], reduction='sum').item()
    return total / (n * (seqlen - 1)), n


def export(model, cfg, args):
    E = cfg['experts']
    tensors = {'model.embed_tokens.weight': model.embed}
    for i, m in enumerate(model.layers):
        p = f'model.layers.{i}.'
        tensors.update({
            p + 'input_layernorm.weight': m.ln1,
            p + 'self_attn.q_proj.weight': m.wq, p + 'self_attn.k_proj.weight': m.wk,
            p + 'self_attn.v_proj.weight': m.wv, p + 'self_attn.o_proj.weight': m.wo,
            p + 'post_attention_layernorm.weight': m.ln2,
            p + 'block_sparse_moe.gate.weight': m.router,
        })
        for j in range(E):
            for name, w in (('w1', m.w1), ('w2', m.w2), ('w3', m.w3)):
                tensors[f'{p}block_sparse_moe.experts.{j}.{name}.weight'] = w[j]
    tensors['model.norm.weight'] = model.norm
    tmp = args.out + '.partial'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    header, blobs, offset = {}, [], 0
    for name in sorted(tensors):
        a = tensors[name].detach().float().contiguous().numpy().astype('<f4')
        header[name] = {'dtype': 'F32', 'shape': list(a.shape), 'data_offsets': [offset, offset + a.nbytes]}
        blobs.append(a.tobytes())
        offset += a.nbytes
    header['__metadata__'] = {'format': 'pt'}
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * ((8 - len(h) % 8) % 8)
    with open(os.path.join(tmp, 'model.safetensors'), 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)
    config = {
        'architectures': ['MixtralForCausalLM'], 'model_type': 'mixtral',
        'hidden_size': cfg['hidden'], 'intermediate_size': cfg['intermediate'], 'num_hidden_layers': cfg['layers'],
        'num_attention_heads': cfg['heads'], 'num_key_value_heads': cfg['heads'], 'vocab_size': cfg['vocab'],
        'num_local_experts': E, 'num_experts_per_tok': cfg['top_k'], 'router_aux_loss_coef': args.aux,
        'max_position_embeddings': 512, 'rms_norm_eps': cfg['eps'], 'rope_theta': cfg['rope_theta'],
        'sliding_window': None, 'hidden_act': 'silu', 'tie_word_embeddings': True,
        'bos_token_id': 1, 'eos_token_id': 2, 'torch_dtype': 'float32',
    }
    with open(os.path.join(tmp, 'config.json'), 'w') as f:
        json.dump(config, f, indent=2)
        f.write('\n')
    for name in ('tokenizer.json', 'tokenizer_config.json'):
        shutil.copyfile(os.path.join(args.tokenizer_dir, name), os.path.join(tmp, name))
    shutil.rmtree(args.out, ignore_errors=True)
    os.rename(tmp, args.out)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--train', required=True, help='int32 token ids to train on')
    ap.add_argument('--eval', required=True, help='int32 token ids of held-out text (reported, never trained on)')
    ap.add_argument('--out', required=True, help='the Hugging Face folder to write')
    ap.add_argument('--tokenizer-dir', default='models/stories260K')
    ap.add_argument('--hidden', type=int, default=64)
    ap.add_argument('--heads', type=int, default=4)
    ap.add_argument('--layers', type=int, default=3)
    ap.add_argument('--intermediate', type=int, default=64, help='one expert\'s SwiGLU width')
    ap.add_argument('--experts', type=int, default=8)
    ap.add_argument('--top-k', type=int, default=2)
    ap.add_argument('--vocab', type=int, default=512)
    ap.add_argument('--seqlen', type=int, default=256)
    ap.add_argument('--batch', type=int, default=8)
    ap.add_argument('--steps', type=int, default=800)
    ap.add_argument('--warmup', type=int, default=30)
    ap.add_argument('--lr', type=float, default=3e-3)
    ap.add_argument('--min-lr', type=float, default=3e-4)
    ap.add_argument('--weight-decay', type=float, default=0.1)
    ap.add_argument('--aux', type=float, default=0.02, help="router_aux_loss_coef (load balancing; Mixtral-8x7B's config says 0.02)")
    ap.add_argument('--clip', type=float, default=1.0)
    ap.add_argument('--eval-windows', type=int, default=595)
    ap.add_argument('--log-every', type=int, default=25)
    ap.add_argument('--seed', type=int, default=0)
    args = ap.parse_args()

    # One thread: deterministic for a seed on one machine, and polite on a shared one.
    torch.set_num_threads(1)
    torch.manual_seed(args.seed)
    cfg = {'hidden': args.hidden, 'heads': args.heads, 'layers': args.layers, 'intermediate': args.intermediate,
           'experts': args.experts, 'top_k': args.top_k, 'vocab': args.vocab, 'eps': 1e-5, 'rope_theta': 10000.0}
    model = TinyMixtral(cfg, args.seed)
    params = sum(p.numel() for p in model.parameters())
    print(f'{params} parameters')
    decay = [p for n, p in model.named_parameters() if p.dim() >= 2]
    no_decay = [p for n, p in model.named_parameters() if p.dim() < 2]
    opt = torch.optim.AdamW([{'params': decay, 'weight_decay': args.weight_decay}, {'params': no_decay, 'weight_decay': 0.0}],
                            lr=args.lr, betas=(0.9, 0.95))
    train_ids = read_ids(args.train)
    rng = np.random.default_rng(args.seed)
    start = time.time()
    log = []
    for step in range(1, args.steps + 1):
        if step <= args.warmup:
            lr = args.lr * step / args.warmup
        else:
            t = (step - args.warmup) / max(1, args.steps - args.warmup)
            lr = args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * t))
        for g in opt.param_groups:
            g['lr'] = lr
        offsets = rng.integers(0, len(train_ids) - args.seqlen, args.batch)
        x = torch.from_numpy(np.stack([train_ids[o:o + args.seqlen] for o in offsets]))
        logits, router_logits = model(x)
        loss = F.cross_entropy(logits[:, :-1].reshape(-1, args.vocab), x[:, 1:].reshape(-1))
        aux = load_balancing_loss(router_logits, args.experts, args.top_k)
        opt.zero_grad()
        (loss + args.aux * aux).backward()
        torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
        opt.step()
        if step == 1 or step % args.log_every == 0:
            print(f'step {step} loss {loss.item():.4f} aux {aux.item():.4f} lr {lr:.2e} {time.time() - start:.1f}s', flush=True)
            log.append({'step': step, 'loss': round(loss.item(), 4), 'aux': round(aux.item(), 4)})
    seconds = time.time() - start
    model.eval()
    eval_loss_value, windows = eval_loss(model, read_ids(args.eval), args.seqlen, args.eval_windows)
    print(f'eval: {windows} windows of {args.seqlen}: loss {eval_loss_value:.6f}, perplexity {math.exp(eval_loss_value):.4f}')
    export(model, cfg, args)
    with open(os.path.join(args.out, 'training.json'), 'w') as f:
        json.dump({'args': vars(args), 'parameters': params, 'seconds': round(seconds, 1), 'log': log,
                   'eval_windows': windows, 'eval_loss': eval_loss_value, 'eval_ppl': math.exp(eval_loss_value),
                   'torch': torch.__version__}, f, indent=2)
        f.write('\n')


if __name__ == '__main__':
    main()
