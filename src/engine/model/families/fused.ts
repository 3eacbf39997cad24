/**
 * Fused projections (Phi-3): the checkpoint stores q, k and v stacked by rows in `qkv_proj` and gate
 * and up in `gate_up_proj`. The engine works on the separate matrices (a fused matrix is pruned as
 * the matrices it holds, structured pruning cuts each part), so blocks are split on read and
 * re-fused on write, in the order the family's forward splits them.
 */
export const FUSED_LINEARS = {
  'self_attn.qkv_proj': ['self_attn.q_proj', 'self_attn.k_proj', 'self_attn.v_proj'],
  'mlp.gate_up_proj': ['mlp.gate_proj', 'mlp.up_proj'],
} as const;

interface Dims {
  arch: { fused: boolean };
}

/** Splits a stored block into the engine's separate tensors; each part's row count comes from `logicalShapes`. */
export function toLogicalBlock(cfg: Dims, stored: Map<string, Float32Array>, logicalShapes: Map<string, number[]>): Map<string, Float32Array> {
  if (!cfg.arch.fused) return stored;
  const out = new Map<string, Float32Array>();
  for (const [name, values] of stored) {
    const dot = name.lastIndexOf('.');
    const parts = (FUSED_LINEARS as Record<string, readonly string[]>)[name.slice(0, dot)];
    if (!parts) {
      out.set(name, values);
      continue;
    }
    const suffix = name.slice(dot);
    const totalRows = parts.reduce((n, p) => n + logicalShapes.get(p + suffix)![0]!, 0);
    const width = values.length / totalRows;
    let row = 0;
    for (const part of parts) {
      const rows = logicalShapes.get(part + suffix)![0]!;
      out.set(part + suffix, values.slice(row * width, (row + rows) * width));
      row += rows;
    }
  }
  return out;
}

/** Stacks the separate tensors back into the stored fused ones; other tensors pass through. */
export function toStoredBlock(cfg: Dims, logical: Map<string, Float32Array>): Map<string, Float32Array> {
  if (!cfg.arch.fused) return logical;
  const out = new Map<string, Float32Array>();
  const partOf = new Map<string, string>();
  for (const [fused, parts] of Object.entries(FUSED_LINEARS)) for (const p of parts) partOf.set(p, fused);
  for (const [name, values] of logical) {
    const dot = name.lastIndexOf('.');
    const fused = partOf.get(name.slice(0, dot));
    if (!fused) {
      out.set(name, values);
      continue;
    }
    const stored = fused + name.slice(dot);
    if (out.has(stored)) continue;
    const parts = (FUSED_LINEARS as Record<string, readonly string[]>)[fused]!.map((p) => logical.get(p + name.slice(dot))!);
    const joined = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    let offset = 0;
    for (const p of parts) {
      joined.set(p, offset);
      offset += p.length;
    }
    out.set(stored, joined);
  }
  return out;
}
