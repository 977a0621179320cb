/** Stretches of a write that hold data; the all-zero stretches between them are not written. */
export interface DataRun {
  position: number;
  length: number;
  buffers: Uint8Array[];
}

/** Zero detection granularity: large enough to cost nothing next to hashing, small enough to find empty disk areas. */
const BLOCK_BYTES = 64 << 10;
const ZEROS = new Uint8Array(BLOCK_BYTES);

/**
 * Splits `pieces`, contiguous from `position`, into the runs that must be written: 64 KiB blocks of zeros are
 * left out and become holes, so a mostly-empty VM disk is stored sparse (like `cp --sparse=always`) and
 * costs neither the writes nor the space. The file's content is the same: a hole reads as zeros. The last
 * byte is always written, so the file reaches its full length even when it ends in zeros (the file is
 * never truncated here: writes of the next batch may already be under way).
 */
export function dataRuns(pieces: Uint8Array[], position: number): DataRun[] {
  const runs: DataRun[] = [];
  let end = position;
  const add = (data: Uint8Array, at: number) => {
    const last = runs.at(-1);
    if (last && last.position + last.length === at) {
      last.buffers.push(data);
      last.length += data.length;
    } else runs.push({ position: at, length: data.length, buffers: [data] });
  };
  for (const piece of pieces) {
    let dataFrom = -1;
    for (let i = 0; i < piece.length; i += BLOCK_BYTES) {
      const block = piece.subarray(i, i + BLOCK_BYTES);
      const zero = Buffer.compare(block, ZEROS.subarray(0, block.length)) === 0;
      if (!zero && dataFrom < 0) dataFrom = i;
      if (zero && dataFrom >= 0) {
        add(piece.subarray(dataFrom, i), end + dataFrom);
        dataFrom = -1;
      }
    }
    if (dataFrom >= 0) add(piece.subarray(dataFrom), end + dataFrom);
    end += piece.length;
  }
  const last = runs.at(-1);
  if (end > position && (!last || last.position + last.length < end)) add(new Uint8Array(1), end - 1);
  return runs;
}

/** Writes a run whole, however many calls `writev` (bytes written at a position) takes for it. */
export async function writeRun(
  run: DataRun,
  writev: (buffers: Uint8Array[], position: number) => Promise<number>,
): Promise<void> {
  for (let done = 0; done < run.length;) done += await writev(remainder(run.buffers, done), run.position + done);
}

function remainder(pieces: Uint8Array[], skip: number): Uint8Array[] {
  const rest: Uint8Array[] = [];
  for (const piece of pieces) {
    if (skip >= piece.length) skip -= piece.length;
    else {
      rest.push(skip > 0 ? piece.subarray(skip) : piece);
      skip = 0;
    }
  }
  return rest;
}
