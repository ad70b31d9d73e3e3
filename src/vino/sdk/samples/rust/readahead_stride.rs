//! readahead_stride.rs — fs.readahead graft: the Rust port of readahead_stride.c.
//!
//! Same policy, same message, same answers (a test compares them with the C
//! sample's): prefetch along the application's stride, or along a stride the
//! last three accesses agree on, once per window. See the C file for the policy
//! in full.
#![no_std]

mod vino;

vino_buffer!(vino::RA_BUFFER);

/// The application's stride, in blocks; 0 = learn from the history.
static mut EXPLICIT_STRIDE: u32 = 0;

#[no_mangle]
pub extern "C" fn vino_message(len: i32) -> i32 {
    if len != 4 {
        return -1;
    }
    unsafe { EXPLICIT_STRIDE = vino::load_u32(vino_buf_bytes(), 0) };
    0
}

/// The stride of the last three accesses if they agree, else 0; and whether the
/// access before those three does not continue the pattern (it was just found).
fn learned_stride(b: &vino::RaBuf, n_hist: usize) -> (i64, bool) {
    let mut seq = [0i64; 4];
    let mut m = 0;
    seq[m] = b.block as i64;
    m += 1;
    let first = if n_hist > 0 && b.hist[0] == b.block { 1 } else { 0 };
    for i in first..n_hist {
        if m == 4 {
            break;
        }
        seq[m] = b.hist[i] as i64;
        m += 1;
    }
    if m < 3 {
        return (0, false);
    }
    let d1 = seq[0] - seq[1];
    let d2 = seq[1] - seq[2];
    if d1 != d2 {
        return (0, false);
    }
    (d1, m < 4 || seq[2] - seq[3] != d1)
}

#[no_mangle]
pub extern "C" fn vino_readahead() -> i32 {
    let b: &mut vino::RaBuf = vino_buf();
    // Never trust the host's counts beyond the arrays they index.
    let max_out = (b.max_out as usize).min(vino::RA_MAX_OUT);
    let n_hist = (b.n_hist as usize).min(vino::RA_HIST);

    let explicit = unsafe { EXPLICIT_STRIDE };
    let (stride, fresh) =
        if explicit != 0 { (explicit as i64, false) } else { learned_stride(b, n_hist) };
    if stride == 0 || max_out == 0 {
        return 0;
    }
    if explicit == 0 && !fresh {
        let step = stride.unsigned_abs();
        if (b.block as u64 / step) % max_out as u64 != 0 {
            return 0; // mid-window: already fetched
        }
    }

    let mut next = b.block as i64;
    let end = b.file_blocks as i64;
    let mut count = 0;
    while count < max_out {
        next += stride;
        if next < 0 || next >= end {
            break;
        }
        b.out[count] = next as u32;
        count += 1;
    }
    count as i32
}
