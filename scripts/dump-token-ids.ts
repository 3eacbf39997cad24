/**
 * Writes the token ids PruneLens gives a text file (the checkpoint's tokenizer, the engine's encoder,
 * BOS first as in `eval` and calibration) as little-endian int32, so a model trained outside the
 * engine (scripts/train-tiny-llama.py) sees exactly the ids the engine evaluates and calibrates on.
 *
 *   esbuild scripts/dump-token-ids.ts --bundle --platform=node --format=cjs --outfile=out/dump-token-ids.js
 *   node out/dump-token-ids.js models/stories260K data/tinystories/calibration.txt /tmp/calibration.bin
 */
import { promises as fsp } from 'node:fs';
import { readTextFile } from '../src/engine/text/text-file';
import { TextTokenizer } from '../src/engine/text/tokenizer';

async function main(): Promise<void> {
  const [modelDir, textFile, outFile] = process.argv.slice(2);
  if (!modelDir || !textFile || !outFile) throw new Error('usage: dump-token-ids <model dir> <text file> <out.bin>');
  const tokenizer = await TextTokenizer.load(modelDir);
  const ids = tokenizer.encode(await readTextFile(textFile));
  await fsp.writeFile(outFile, Buffer.from(ids.buffer, ids.byteOffset, ids.byteLength));
  console.log(`${textFile}: ${ids.length} ids (${tokenizer.encoderKind}) -> ${outFile}`);
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? err.message : String(err));
  process.exit(1);
});
