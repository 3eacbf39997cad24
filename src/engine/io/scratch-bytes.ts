/**
 * One byte buffer reused from call to call, so that reading or writing tensor after tensor touches no
 * new memory (new memory is paid for in page faults as it is first written; see Checkpoint.recycle).
 * It is lent whole to one call at a time: a call made while another holds it gets a buffer of its own.
 */
export class ScratchBytes {
  private kept: Uint8Array<ArrayBuffer> | undefined;

  /** Runs `use` with a buffer of at least `bytes` bytes (grown when the kept one is smaller). */
  async with<T>(bytes: number, use: (buffer: Uint8Array<ArrayBuffer>) => Promise<T>): Promise<T> {
    let buffer = this.kept;
    this.kept = undefined;
    if (!buffer || buffer.byteLength < bytes) buffer = new Uint8Array(bytes);
    try {
      return await use(buffer);
    } finally {
      this.kept = buffer;
    }
  }
}
