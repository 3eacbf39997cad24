#!/usr/bin/env python3
"""Trains a small Llama on token ids and exports it as a Hugging Face folder, with numpy only.

The model is the Hugging Face Llama: RMSNorm, rotary embeddings as HF applies them (rotate_half on the
two halves of each head), causal multi-head attention, SwiGLU MLP, tied input/output embeddings. The
forward pass and its backward pass are written out by hand (float32 for training); `--gradcheck`
compares the backward pass with central finite differences on a tiny float64 instance.

The token ids come from scripts/dump-token-ids.ts (the engine's own tokenizer), so training, the
engine's calibration and its evaluation all see the same ids:

  esbuild scripts/dump-token-ids.ts --bundle --platform=node --format=cjs --outfile=out/dump-token-ids.js
  node out/dump-token-ids.js models/stories260K data/tinystories/calibration.txt /tmp/train.bin
  node out/dump-token-ids.js models/stories260K data/tinystories/eval.txt /tmp/eval.bin
  python3 scripts/train-tiny-llama.py --gradcheck
  python3 scripts/train-tiny-llama.py --train /tmp/train.bin --eval /tmp/eval.bin --out models/tinystories-382K
"""
import argparse
import json
import math
import os
import shutil
import struct
import sys
import time

# One BLAS thread: the matrices are small, and on a shared machine OpenBLAS's spinning threads make
# each step several times slower than one thread does. Set before numpy loads OpenBLAS.
os.environ.setdefault('OPENBLAS_NUM_THREADS', '1')

import numpy as np  # noqa: E402


# ---------------------------------------------------------------------------------------------- model

def init_params(cfg, rng, dtype):
    d, f, v, L = cfg['hidden'], cfg['intermediate'], cfg['vocab'], cfg['layers']
    std = 0.02
    # Residual-branch outputs start smaller so the residual stream's scale does not grow with depth.
    out_std = std / math.sqrt(2 * L)
    p = {'embed': rng.normal(0, std, (v, d))}
    for i in range(L):
        p[f'{i}.ln1'] = np.ones(d)
        p[f'{i}.wq'] = rng.normal(0, std, (d, d))
        p[f'{i}.wk'] = rng.normal(0, std, (d, d))
        p[f'{i}.wv'] = rng.normal(0, std, (d, d))
        p[f'{i}.wo'] = rng.normal(0, out_std, (d, d))
        p[f'{i}.ln2'] = np.ones(d)
        p[f'{i}.wg'] = rng.normal(0, std, (f, d))
        p[f'{i}.wu'] = rng.normal(0, std, (f, d))
        p[f'{i}.wd'] = rng.normal(0, out_std, (d, f))
    p['norm'] = np.ones(d)
    return {k: a.astype(dtype) for k, a in p.items()}


def rope_tables(T, hd, theta, dtype):
    inv_freq = 1.0 / (theta ** (np.arange(0, hd, 2, dtype=np.float64) / hd))
    freqs = np.outer(np.arange(T, dtype=np.float64), inv_freq)
    emb = np.concatenate([freqs, freqs], axis=-1)  # HF: the same frequency on both halves
    return np.cos(emb).astype(dtype), np.sin(emb).astype(dtype)


def rotate_half(x):
    h = x.shape[-1] // 2
    return np.concatenate([-x[..., h:], x[..., :h]], axis=-1)


def rotate_half_t(y):
    """The transpose of rotate_half (its inverse): the backward pass of a rotation."""
    h = y.shape[-1] // 2
    return np.concatenate([y[..., h:], -y[..., :h]], axis=-1)


def rmsnorm(x, w, eps):
    r = 1.0 / np.sqrt(np.mean(x * x, axis=-1, keepdims=True) + eps)
    xn = x * r
    return xn * w, (xn, r)


def rmsnorm_back(dy, w, cache):
    xn, r = cache
    dxn = dy * w
    dw = np.sum(dy * xn, axis=tuple(range(dy.ndim - 1)))
    dx = r * (dxn - xn * np.mean(dxn * xn, axis=-1, keepdims=True))
    return dx, dw


def forward(p, cfg, ids, targets=None):
    """Logits (B, T, V), and with targets the mean cross-entropy and a cache for backward."""
    B, T = ids.shape
    d, H, L, eps = cfg['hidden'], cfg['heads'], cfg['layers'], cfg['eps']
    hd = d // H
    dtype = p['embed'].dtype
    cos, sin = rope_tables(T, hd, cfg['theta'], dtype)
    mask = np.triu(np.full((T, T), -np.inf, dtype=dtype), 1)
    scale = dtype.type(1.0 / math.sqrt(hd))
    x = p['embed'][ids]
    caches = []
    for i in range(L):
        h, n1 = rmsnorm(x, p[f'{i}.ln1'], eps)
        heads = lambda a: a.reshape(B, T, H, hd).transpose(0, 2, 1, 3)
        q0, k0, v = heads(h @ p[f'{i}.wq'].T), heads(h @ p[f'{i}.wk'].T), heads(h @ p[f'{i}.wv'].T)
        q = q0 * cos + rotate_half(q0) * sin
        k = k0 * cos + rotate_half(k0) * sin
        s = (q @ k.transpose(0, 1, 3, 2)) * scale + mask
        s -= s.max(axis=-1, keepdims=True)
        a = np.exp(s)
        a /= a.sum(axis=-1, keepdims=True)
        o = (a @ v).transpose(0, 2, 1, 3).reshape(B, T, d)
        x = x + o @ p[f'{i}.wo'].T
        h2, n2 = rmsnorm(x, p[f'{i}.ln2'], eps)
        g, u = h2 @ p[f'{i}.wg'].T, h2 @ p[f'{i}.wu'].T
        sg = 1.0 / (1.0 + np.exp(-g))
        act = g * sg * u
        x = x + act @ p[f'{i}.wd'].T
        caches.append((h, n1, q, k, v, a, o, h2, n2, g, u, sg, act))
    xf, nf = rmsnorm(x, p['norm'], eps)
    logits = xf @ p['embed'].T
    if targets is None:
        return logits
    z = logits - logits.max(axis=-1, keepdims=True)
    logp = z - np.log(np.sum(np.exp(z), axis=-1, keepdims=True))
    nll = -np.take_along_axis(logp, targets[..., None], axis=-1)[..., 0]
    return logits, float(nll.mean()), (ids, targets, cos, sin, scale, caches, xf, nf, logp)


def flat(a):
    return a.reshape(-1, a.shape[-1])


def backward(p, cfg, cache):
    ids, targets, cos, sin, scale, caches, xf, nf, logp = cache
    B, T = ids.shape
    d, H, L = cfg['hidden'], cfg['heads'], cfg['layers']
    hd = d // H
    g_ = {}
    dlogits = np.exp(logp)
    np.put_along_axis(dlogits, targets[..., None], np.take_along_axis(dlogits, targets[..., None], axis=-1) - 1, axis=-1)
    dlogits /= B * T
    g_['embed'] = flat(dlogits).T @ flat(xf)
    dx, g_['norm'] = rmsnorm_back(dlogits @ p['embed'], p['norm'], nf)
    unheads = lambda a: a.transpose(0, 2, 1, 3).reshape(B, T, d)
    for i in reversed(range(L)):
        h, n1, q, k, v, a, o, h2, n2, g, u, sg, act = caches[i]
        # MLP: x += (silu(g) * u) @ Wd.T
        g_[f'{i}.wd'] = flat(dx).T @ flat(act)
        dact = dx @ p[f'{i}.wd']
        du = dact * g * sg
        dg = dact * u * sg * (1 + g * (1 - sg))
        g_[f'{i}.wg'] = flat(dg).T @ flat(h2)
        g_[f'{i}.wu'] = flat(du).T @ flat(h2)
        dh2 = dg @ p[f'{i}.wg'] + du @ p[f'{i}.wu']
        dxn, g_[f'{i}.ln2'] = rmsnorm_back(dh2, p[f'{i}.ln2'], n2)
        dx = dx + dxn
        # Attention: x += o @ Wo.T
        g_[f'{i}.wo'] = flat(dx).T @ flat(o)
        do = (dx @ p[f'{i}.wo']).reshape(B, T, H, hd).transpose(0, 2, 1, 3)
        da = do @ v.transpose(0, 1, 3, 2)
        dv = a.transpose(0, 1, 3, 2) @ do
        ds = a * (da - np.sum(da * a, axis=-1, keepdims=True)) * scale
        dq = ds @ k
        dk = ds.transpose(0, 1, 3, 2) @ q
        dq0 = unheads(dq * cos + rotate_half_t(dq * sin))
        dk0 = unheads(dk * cos + rotate_half_t(dk * sin))
        dv = unheads(dv)
        g_[f'{i}.wq'] = flat(dq0).T @ flat(h)
        g_[f'{i}.wk'] = flat(dk0).T @ flat(h)
        g_[f'{i}.wv'] = flat(dv).T @ flat(h)
        dh = dq0 @ p[f'{i}.wq'] + dk0 @ p[f'{i}.wk'] + dv @ p[f'{i}.wv']
        dxn, g_[f'{i}.ln1'] = rmsnorm_back(dh, p[f'{i}.ln1'], n1)
        dx = dx + dxn
    np.add.at(g_['embed'], ids, dx)
    return g_


# ------------------------------------------------------------------------------------------- gradcheck

def gradcheck(seed):
    """Max relative error of the hand-written gradients against central differences (float64, step 1e-5;
    |a - n| / max(|a| + |n|, 1e-6) per entry, so entries near zero do not divide by rounding noise)."""
    cfg = {'hidden': 8, 'heads': 2, 'layers': 2, 'intermediate': 12, 'vocab': 16, 'eps': 1e-5, 'theta': 10000.0}
    rng = np.random.default_rng(seed)
    p = init_params(cfg, rng, np.float64)
    # Larger weights than a fresh model's, so every path (attention, norms' gains) carries signal.
    for k in p:
        p[k] = p[k] * 10 if p[k].ndim == 2 else 1 + 0.3 * rng.standard_normal(p[k].shape)
    ids = rng.integers(0, cfg['vocab'], (2, 7))
    targets = rng.integers(0, cfg['vocab'], (2, 7))
    _, _, cache = forward(p, cfg, ids, targets)
    grads = backward(p, cfg, cache)
    eps = 1e-5
    worst = 0.0
    for name, w in p.items():
        num = np.zeros_like(w)
        flat, nflat = w.reshape(-1), num.reshape(-1)
        for j in range(flat.size):
            old = flat[j]
            flat[j] = old + eps
            lp = forward(p, cfg, ids, targets)[1]
            flat[j] = old - eps
            lm = forward(p, cfg, ids, targets)[1]
            flat[j] = old
            nflat[j] = (lp - lm) / (2 * eps)
        err = np.max(np.abs(grads[name] - num) / np.maximum(np.abs(grads[name]) + np.abs(num), 1e-6))
        worst = max(worst, err)
        print(f'  {name:8s} {w.shape!s:10s} max rel err {err:.2e}')
    print(f'gradcheck: max relative error {worst:.2e} over {sum(a.size for a in p.values())} parameters')
    return worst


# ------------------------------------------------------------------------------------------- training

def eval_loss(p, cfg, ids, seqlen, windows, batch=8):
    """Mean NLL over the first `windows` non-overlapping windows, seqlen - 1 targets each (the engine's protocol)."""
    windows = min(windows, len(ids) // seqlen)
    total, count = 0.0, 0
    for w0 in range(0, windows, batch):
        n = min(batch, windows - w0)
        x = ids[w0 * seqlen:(w0 + n) * seqlen].reshape(n, seqlen).astype(np.int64)
        _, loss, _ = forward(p, cfg, x[:, :-1], x[:, 1:])
        total += loss * n * (seqlen - 1)
        count += n * (seqlen - 1)
    return total / count, windows


def train(args):
    cfg = {'hidden': args.hidden, 'heads': args.heads, 'layers': args.layers, 'intermediate': args.intermediate,
           'vocab': args.vocab, 'eps': 1e-5, 'theta': 10000.0}
    data = np.fromfile(args.train, dtype='<i4').astype(np.int64)
    if data.max() >= args.vocab or data.min() < 0:
        sys.exit(f'{args.train}: token ids outside [0, {args.vocab})')
    rng = np.random.default_rng(args.seed)
    p = init_params(cfg, rng, np.float32)
    n_params = sum(a.size for a in p.values())
    print(f'model: {cfg}, {n_params} parameters; train ids {len(data)} from {args.train}', flush=True)
    m = {k: np.zeros_like(a) for k, a in p.items()}
    v = {k: np.zeros_like(a) for k, a in p.items()}
    b1, b2 = 0.9, 0.95
    T = args.seqlen
    start = time.time()
    smooth = None
    for step in range(1, args.steps + 1):
        if step <= args.warmup:
            lr = args.lr * step / args.warmup
        else:
            t = (step - args.warmup) / max(1, args.steps - args.warmup)
            lr = args.min_lr + 0.5 * (args.lr - args.min_lr) * (1 + math.cos(math.pi * t))
        starts = rng.integers(0, len(data) - T - 1, args.batch)
        x = np.stack([data[s:s + T + 1] for s in starts])
        _, loss, cache = forward(p, cfg, x[:, :-1], x[:, 1:])
        grads = backward(p, cfg, cache)
        norm = math.sqrt(sum(float(np.sum(g * g)) for g in grads.values()))
        clip = min(1.0, args.clip / (norm + 1e-12))
        for k in p:
            g = grads[k] * clip
            m[k] = b1 * m[k] + (1 - b1) * g
            v[k] = b2 * v[k] + (1 - b2) * g * g
            mh = m[k] / (1 - b1 ** step)
            vh = v[k] / (1 - b2 ** step)
            # Weight decay on matrices only (not norms' gains), decoupled as in AdamW.
            if p[k].ndim == 2:
                p[k] *= np.float32(1 - lr * args.weight_decay)
            p[k] -= (lr * mh / (np.sqrt(vh) + 1e-8)).astype(np.float32)
        smooth = loss if smooth is None else 0.9 * smooth + 0.1 * loss
        if step % args.log_every == 0 or step == 1 or step == args.steps:
            print(f'step {step:5d}  loss {loss:.4f}  (ema {smooth:.4f})  lr {lr:.2e}  grad norm {norm:.2f}  {time.time() - start:7.1f} s', flush=True)
    seconds = time.time() - start
    # The final train loss: the mean over the last steps' batches would mix weights; measure once, fixed batch.
    final_rng = np.random.default_rng(args.seed + 1)
    starts = final_rng.integers(0, len(data) - T - 1, 64)
    x = np.stack([data[s:s + T + 1] for s in starts])
    final_train = float(np.mean([forward(p, cfg, x[j:j + 8, :-1], x[j:j + 8, 1:])[1] for j in range(0, 64, 8)]))
    print(f'trained {args.steps} steps in {seconds:.1f} s; train loss (64 random windows) {final_train:.4f}', flush=True)
    result = {'steps': args.steps, 'seconds': round(seconds, 1), 'final_train_loss': round(final_train, 4), 'parameters': int(n_params)}
    if args.eval:
        eids = np.fromfile(args.eval, dtype='<i4').astype(np.int64)
        p64 = {k: a.astype(np.float64) for k, a in p.items()}
        loss, w = eval_loss(p64, cfg, eids, 256, args.eval_windows)
        print(f'held-out: first {w} windows of 256 from {args.eval}: loss {loss:.6f}, perplexity {math.exp(loss):.6f} (float64)', flush=True)
        result.update({'eval_windows': w, 'eval_loss': loss, 'eval_ppl': math.exp(loss)})
    export(p, cfg, args)
    with open(os.path.join(args.out, 'training.json'), 'w') as f:
        json.dump({'args': vars(args), **result}, f, indent=2)
        f.write('\n')


def evaluate_only(args):
    """Perplexity of an exported folder on the first windows of a text's ids (float64), to compare with the engine."""
    cfg_json = json.load(open(os.path.join(args.out, 'config.json')))
    cfg = {'hidden': cfg_json['hidden_size'], 'heads': cfg_json['num_attention_heads'], 'layers': cfg_json['num_hidden_layers'],
           'intermediate': cfg_json['intermediate_size'], 'vocab': cfg_json['vocab_size'], 'eps': cfg_json['rms_norm_eps'],
           'theta': cfg_json['rope_theta']}
    p = {k: a.astype(np.float64) for k, a in read_safetensors(os.path.join(args.out, 'model.safetensors'), cfg).items()}
    eids = np.fromfile(args.eval, dtype='<i4').astype(np.int64)
    loss, w = eval_loss(p, cfg, eids, 256, args.eval_windows)
    print(f'{args.out}: first {w} windows of 256 from {args.eval}: loss {loss:.8f}, perplexity {math.exp(loss):.8f} (float64, read back from model.safetensors)')


# --------------------------------------------------------------------------------------------- export

HF_NAMES = {'ln1': 'input_layernorm', 'ln2': 'post_attention_layernorm', 'wq': 'self_attn.q_proj', 'wk': 'self_attn.k_proj',
            'wv': 'self_attn.v_proj', 'wo': 'self_attn.o_proj', 'wg': 'mlp.gate_proj', 'wu': 'mlp.up_proj', 'wd': 'mlp.down_proj'}


def hf_name(key):
    if key == 'embed':
        return 'model.embed_tokens.weight'
    if key == 'norm':
        return 'model.norm.weight'
    layer, part = key.split('.')
    return f'model.layers.{layer}.{HF_NAMES[part]}.weight'


def write_safetensors(path, tensors):
    """The safetensors format: u64 LE header length, a JSON header, then the raw little-endian data."""
    header, offset, blobs = {}, 0, []
    for name, a in tensors.items():
        b = np.ascontiguousarray(a, dtype='<f4').tobytes()
        header[name] = {'dtype': 'F32', 'shape': list(a.shape), 'data_offsets': [offset, offset + len(b)]}
        offset += len(b)
        blobs.append(b)
    header['__metadata__'] = {'format': 'pt'}
    h = json.dumps(header, separators=(',', ':')).encode()
    h += b' ' * (-len(h) % 8)  # the data starts 8-byte aligned
    with open(path, 'wb') as f:
        f.write(struct.pack('<Q', len(h)))
        f.write(h)
        for b in blobs:
            f.write(b)


def read_safetensors(path, cfg):
    with open(path, 'rb') as f:
        n = struct.unpack('<Q', f.read(8))[0]
        header = json.loads(f.read(n))
        data = f.read()
    by_hf = {}
    for name, info in header.items():
        if name == '__metadata__':
            continue
        s, e = info['data_offsets']
        by_hf[name] = np.frombuffer(data[s:e], dtype='<f4').reshape(info['shape'])
    keys = ['embed', 'norm'] + [f'{i}.{k}' for i in range(cfg['layers']) for k in HF_NAMES]
    return {k: by_hf[hf_name(k)] for k in keys}


def export(p, cfg, args):
    out = args.out
    tmp = out.rstrip('/') + '.partial'
    shutil.rmtree(tmp, ignore_errors=True)
    os.makedirs(tmp)
    order = ['embed'] + [f'{i}.{k}' for i in range(cfg['layers']) for k in HF_NAMES] + ['norm']
    write_safetensors(os.path.join(tmp, 'model.safetensors'), {hf_name(k): p[k] for k in order})
    config = {
        'architectures': ['LlamaForCausalLM'],
        'model_type': 'llama',
        'hidden_size': cfg['hidden'],
        'intermediate_size': cfg['intermediate'],
        'num_hidden_layers': cfg['layers'],
        'num_attention_heads': cfg['heads'],
        'num_key_value_heads': cfg['heads'],
        'vocab_size': cfg['vocab'],
        'max_position_embeddings': 512,
        'rms_norm_eps': cfg['eps'],
        'rope_theta': cfg['theta'],
        'hidden_act': 'silu',
        'tie_word_embeddings': True,
        'bos_token_id': 1,
        'eos_token_id': 2,
        'attention_bias': False,
        'mlp_bias': False,
        'torch_dtype': 'float32',
    }
    with open(os.path.join(tmp, 'config.json'), 'w') as f:
        json.dump(config, f, indent=2)
        f.write('\n')
    for name in ('tokenizer.json', 'tokenizer_config.json'):
        shutil.copyfile(os.path.join(args.tokenizer_dir, name), os.path.join(tmp, name))
    shutil.rmtree(out, ignore_errors=True)
    os.rename(tmp, out)
    print(f'exported {out}', flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument('--gradcheck', action='store_true', help='check the backward pass against finite differences and exit')
    ap.add_argument('--evaluate-only', action='store_true', help='read --out back and print its perplexity on --eval')
    ap.add_argument('--train', help='int32 token ids to train on')
    ap.add_argument('--eval', help='int32 token ids of held-out text (reported, never trained on)')
    ap.add_argument('--eval-windows', type=int, default=8)
    ap.add_argument('--out', help='the Hugging Face folder to write')
    ap.add_argument('--tokenizer-dir', default='models/stories260K')
    ap.add_argument('--hidden', type=int, default=96)
    ap.add_argument('--heads', type=int, default=4)
    ap.add_argument('--layers', type=int, default=3)
    ap.add_argument('--intermediate', type=int, default=256)
    ap.add_argument('--vocab', type=int, default=512)
    ap.add_argument('--seqlen', type=int, default=256)
    ap.add_argument('--batch', type=int, default=16)
    ap.add_argument('--steps', type=int, default=700)
    ap.add_argument('--warmup', type=int, default=30)
    ap.add_argument('--lr', type=float, default=3e-3)
    ap.add_argument('--min-lr', type=float, default=3e-4)
    ap.add_argument('--weight-decay', type=float, default=0.1)
    ap.add_argument('--clip', type=float, default=1.0)
    ap.add_argument('--log-every', type=int, default=25)
    ap.add_argument('--seed', type=int, default=0)
    args = ap.parse_args()
    if args.gradcheck:
        err = gradcheck(args.seed)
        sys.exit(0 if err < 1e-5 else 1)
    if args.evaluate_only:
        evaluate_only(args)
        return
    if not args.train or not args.out:
        ap.error('--train and --out are required (or --gradcheck)')
    train(args)


if __name__ == '__main__':
    main()
