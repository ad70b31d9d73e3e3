// readahead_stride.ts — fs.readahead graft: the AssemblyScript port of
// readahead_stride.c.
//
// Same policy, same message, same answers (a test compares them with the C
// sample's): prefetch along the application's stride, or along a stride the
// last three accesses agree on, once per window. See the C file for the policy
// in full.
import * as vino from "./vino";

const BUF = memory.data(vino.RA_BUFFER, 16);

/** The application's stride, in blocks; 0 = learn from the history. */
let explicitStride: u32 = 0;
/** Set by learnedStride: the pattern was just recognised. */
let fresh = false;

export function vino_buffer(): i32 {
  return <i32>BUF;
}

export function vino_message(len: i32): i32 {
  if (len != 4) return -1;
  explicitStride = load<u32>(BUF);
  return 0;
}

/** The stride of the last three accesses if they agree, else 0. */
function learnedStride(b: vino.RaBuf, nHist: u32): i64 {
  fresh = false;
  const s0: i64 = <i64>b.block;
  let s1: i64 = 0, s2: i64 = 0, s3: i64 = 0;
  let m = 1;
  for (let i: u32 = nHist > 0 && b.hist(0) == b.block ? 1 : 0; i < nHist && m < 4; i++) {
    const h = <i64>b.hist(i);
    if (m == 1) s1 = h;
    else if (m == 2) s2 = h;
    else s3 = h;
    m++;
  }
  if (m < 3) return 0;
  const d1 = s0 - s1;
  const d2 = s1 - s2;
  if (d1 != d2) return 0;
  fresh = m < 4 || s2 - s3 != d1;
  return d1;
}

export function vino_readahead(): i32 {
  const b = changetype<vino.RaBuf>(BUF);
  // Never trust the host's counts beyond the arrays they index.
  const maxOut = min(b.max_out, vino.RA_MAX_OUT);
  const nHist = min(b.n_hist, vino.RA_HIST);

  fresh = false;
  const stride: i64 = explicitStride ? <i64>explicitStride : learnedStride(b, nHist);
  if (stride == 0 || maxOut == 0) return 0;
  if (!explicitStride && !fresh) {
    const step = <u64>(stride < 0 ? -stride : stride);
    if ((<u64>b.block / step) % <u64>maxOut != 0) return 0; // mid-window: already fetched
  }

  let next: i64 = <i64>b.block;
  const end: i64 = <i64>b.file_blocks;
  let count: u32 = 0;
  while (count < maxOut) {
    next += stride;
    if (next < 0 || next >= end) break;
    b.setOut(count++, <u32>next);
  }
  return <i32>count;
}
