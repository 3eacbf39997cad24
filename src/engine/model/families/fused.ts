import type { FusedLinear, TensorNames } from './tensor-names';

/**
 * A block as the checkpoint stores it and as the engine works on it. The engine works on the separate
 * [out, in] matrices under Llama's names (a fused matrix is pruned as the matrices it holds; structured
 * pruning cuts each part), so blocks are converted on read and back on write: renamed, split where the
 * family fuses (stacked by rows, or per head for GPT-NeoX) and transposed where it stores [in, out].
 */
interface Dims {
  numHeads: number;
  arch: { names: TensorNames };
}

function split(name: string): [module: string, suffix: string] {
  const dot = name.lastIndexOf('.');
  return [name.slice(0, dot), name.slice(dot)];
}

/** [rows, cols] row-major -> [cols, rows]. */
function transpose(values: Float32Array, rows: number, cols: number): Float32Array {
  const out = new Float32Array(values.length);
  for (let r = 0; r < rows; r++) for (let c = 0; c < cols; c++) out[c * rows + r] = values[r * cols + c]!;
  return out;
}

/**
 * Row ranges of each part inside the fused tensor (in its [out, in] orientation): one range per part
 * when stacked, one per part and head when per head. `rows[i]` is part i's row count.
 */
function partRanges(fused: FusedLinear, rows: number[], heads: number): [part: number, from: number, to: number][] {
  const ranges: [number, number, number][] = [];
  if (!fused.perHead) {
    let at = 0;
    rows.forEach((n, i) => {
      ranges.push([i, at, at + n]);
      at += n;
    });
    return ranges;
  }
  let at = 0;
  for (let h = 0; h < heads; h++) {
    rows.forEach((n, i) => {
      const chunk = n / heads;
      ranges.push([i, at, at + chunk]);
      at += chunk;
    });
  }
  return ranges;
}

/** The block's tensors as stored, with their shapes, from the engine's logical shapes. */
export function storedShapes(cfg: Dims, logical: Map<string, number[]>): Map<string, number[]> {
  const { names } = cfg.arch;
  const shapes = new Map<string, number[]>();
  for (const [name, shape] of logical) {
    const [module, suffix] = split(name);
    const fused = names.fused.find((f) => f.parts.includes(module));
    const stored = (fused?.stored ?? names.renames[module] ?? module) + suffix;
    const previous = shapes.get(stored);
    shapes.set(stored, fused && previous ? [previous[0]! + shape[0]!, ...shape.slice(1)] : [...shape]);
  }
  if (names.transposed) for (const [name, shape] of shapes) if (shape.length === 2) shapes.set(name, [shape[1]!, shape[0]!]);
  return shapes;
}

/** Splits, renames and transposes a stored block into the engine's tensors; row counts come from `logicalShapes`. */
export function toLogicalBlock(cfg: Dims, stored: Map<string, Float32Array>, logicalShapes: Map<string, number[]>): Map<string, Float32Array> {
  const { names } = cfg.arch;
  if (names.fused.length === 0 && Object.keys(names.renames).length === 0 && !names.transposed) return stored;
  const back = new Map(Object.entries(names.renames).map(([engine, kept]) => [kept, engine]));
  const out = new Map<string, Float32Array>();
  for (const [name, raw] of stored) {
    const [module, suffix] = split(name);
    const fused = names.fused.find((f) => f.stored === module);
    const partShapes = fused ? fused.parts.map((p) => logicalShapes.get(p + suffix)!) : [logicalShapes.get((back.get(module) ?? module) + suffix)!];
    const cols = partShapes[0]!.length === 2 ? partShapes[0]![1]! : 1;
    const rows = partShapes.reduce((n, s) => n + s[0]!, 0);
    const values = names.transposed && cols > 1 ? transpose(raw, cols, rows) : raw;
    if (!fused) {
      out.set((back.get(module) ?? module) + suffix, values);
      continue;
    }
    const parts = partShapes.map((s) => new Float32Array(s[0]! * cols));
    const filled = parts.map(() => 0);
    for (const [i, from, to] of partRanges(fused, partShapes.map((s) => s[0]!), cfg.numHeads)) {
      parts[i]!.set(values.subarray(from * cols, to * cols), filled[i]!);
      filled[i]! += (to - from) * cols;
    }
    fused.parts.forEach((p, i) => out.set(p + suffix, parts[i]!));
  }
  return out;
}

/** The engine's tensors back as the checkpoint stores them: fused, renamed and transposed again; shapes as in `logicalShapes`. */
export function toStoredBlock(cfg: Dims, logical: Map<string, Float32Array>, logicalShapes: Map<string, number[]>): Map<string, Float32Array> {
  const { names } = cfg.arch;
  if (names.fused.length === 0 && Object.keys(names.renames).length === 0 && !names.transposed) return logical;
  const out = new Map<string, Float32Array>();
  const store = (name: string, values: Float32Array, rows: number, cols: number): void => {
    out.set(name, names.transposed && cols > 1 ? transpose(values, rows, cols) : values);
  };
  for (const [name, values] of logical) {
    const [module, suffix] = split(name);
    const fused = names.fused.find((f) => f.parts.includes(module));
    const shape = logicalShapes.get(name)!;
    const cols = shape.length === 2 ? shape[1]! : 1;
    if (!fused) {
      store((names.renames[module] ?? module) + suffix, values, shape[0]!, cols);
      continue;
    }
    if (out.has(fused.stored + suffix)) continue;
    const parts = fused.parts.map((p) => logical.get(p + suffix)!);
    const partRows = fused.parts.map((p) => logicalShapes.get(p + suffix)![0]!);
    const joined = new Float32Array(parts.reduce((n, p) => n + p.length, 0));
    const taken = parts.map(() => 0);
    for (const [i, from, to] of partRanges(fused, partRows, cfg.numHeads)) {
      joined.set(parts[i]!.subarray(taken[i]!, taken[i]! + (to - from) * cols), from * cols);
      taken[i]! += (to - from) * cols;
    }
    store(fused.stored + suffix, joined, partRows.reduce((a, b) => a + b, 0), cols);
  }
  return out;
}
