import * as path from 'node:path';

/**
 * The model and texts that ship with PruneLens. Paths resolve from the bundle in `dist/`, where the
 * CLI and the extension both run.
 */
const root = path.resolve(__dirname, '..');

export const EMBEDDED_MODEL = path.join(root, 'models', 'stories260K');
export const SAMPLE_CALIBRATION_TEXT = path.join(root, 'data', 'tinystories', 'calibration.txt');
export const SAMPLE_EVALUATION_TEXT = path.join(root, 'data', 'tinystories', 'eval.txt');
