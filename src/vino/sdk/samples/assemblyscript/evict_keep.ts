// evict_keep.ts — vm.evict graft: the AssemblyScript port of evict_keep.c.
//
// Same policy, same message, same answers (a test compares them with the C
// sample's): the least recently used candidate that is not important, else
// the least recently used of all. Message: u32 LE count, then count u32 LE
// vpns (count <= 256, exactly 4 + 4 * count bytes); malformed is refused.
import * as vino from "./vino";

const BUF = memory.data(vino.EVICT_BUFFER, 16);

const MAX_IMPORTANT: u32 = 256;

// Invariant: the u32s at IMPORTANT[0..nImportant) are sorted ascending.
const IMPORTANT = memory.data(4 * 256, 16);
let nImportant: u32 = 0;

@inline function important(i: u32): u32 {
  return load<u32>(IMPORTANT + (<usize>i << 2));
}

export function vino_buffer(): i32 {
  return <i32>BUF;
}

export function vino_message(len: i32): i32 {
  if (len < 4) return -1;
  const count = load<u32>(BUF);
  if (count > MAX_IMPORTANT || <u32>len != 4 + 4 * count) return -1;
  // Insertion sort: at most 256 entries, once per message.
  for (let i: u32 = 0; i < count; i++) {
    const v = load<u32>(BUF + 4 + (<usize>i << 2));
    let j = i;
    for (; j > 0 && important(j - 1) > v; j--) {
      store<u32>(IMPORTANT + (<usize>j << 2), important(j - 1));
    }
    store<u32>(IMPORTANT + (<usize>j << 2), v);
  }
  nImportant = count;
  return 0;
}

function isImportant(vpn: u32): bool {
  let lo: u32 = 0, hi = nImportant;
  while (lo < hi) {
    const mid = lo + (hi - lo) / 2;
    if (important(mid) < vpn) lo = mid + 1;
    else hi = mid;
  }
  return lo < nImportant && important(lo) == vpn;
}

export function vino_evict(): i32 {
  const b = changetype<vino.EvictBuf>(BUF);
  const n = min(b.n, vino.EVICT_MAX);
  if (n == 0) return -1; // no valid answer: let the validator call the default

  let lru: u32 = 0; // oldest candidate of all
  let victim: i32 = -1; // oldest candidate that is not important
  let victimUse: u64 = 0;
  for (let i: u32 = 0; i < n; i++) {
    const c = b.cand(i);
    const use = c.last_use;
    if (use < b.cand(lru).last_use) lru = i;
    if ((victim < 0 || use < victimUse) && !isImportant(c.vpn)) {
      victim = <i32>i;
      victimUse = use;
    }
  }
  return victim >= 0 ? victim : <i32>lru;
}
