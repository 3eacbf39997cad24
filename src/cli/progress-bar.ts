import type { EngineEvent } from '../engine/progress';

/** A one-line progress bar on a terminal's stderr; silent when stderr is not a terminal. */
export function progressBar(stream: NodeJS.WriteStream = process.stderr): { onProgress: (e: EngineEvent) => void; done: () => void } {
  if (!stream.isTTY) return { onProgress: (e) => e.type !== 'stage' && stream.write(`${e.type}: ${e.message}\n`), done: () => {} };
  let last = 0;
  let drawn = false;
  const onProgress = (e: EngineEvent): void => {
    if (e.type !== 'stage') {
      stream.write(`\r\x1b[2K${e.type}: ${e.message}\n`);
      return;
    }
    const now = Date.now();
    // Redrawing on every ORT run would cost more than the runs themselves on a small model.
    if (now - last < 100 && e.done < e.total) return;
    last = now;
    const width = 30;
    const filled = Math.round((e.done / e.total) * width);
    const pct = ((100 * e.done) / e.total).toFixed(0).padStart(3);
    stream.write(`\r\x1b[2K${e.stage} [${'#'.repeat(filled)}${'.'.repeat(width - filled)}] ${pct}% ${e.detail ?? ''}`);
    drawn = true;
  };
  return { onProgress, done: () => drawn && stream.write('\r\x1b[2K') };
}
