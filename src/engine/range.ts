/**
 * The accepted values of a numeric setting. Bounds are inclusive unless marked open; `rangeText`
 * writes it as `[0, 1)` for help and errors, so a range is stated exactly as it is checked.
 */
export interface NumberRange {
  readonly integer: boolean;
  readonly min: number;
  readonly max: number;
  readonly minOpen?: boolean;
  readonly maxOpen?: boolean;
}

export function inRange(n: number, r: NumberRange): boolean {
  return Number.isFinite(n) && (!r.integer || Number.isInteger(n)) && (r.minOpen ? n > r.min : n >= r.min) && (r.maxOpen ? n < r.max : n <= r.max);
}

export function rangeText(r: NumberRange): string {
  return `${r.minOpen ? '(' : '['}${r.min}, ${r.max}${r.maxOpen ? ')' : ']'}`;
}
