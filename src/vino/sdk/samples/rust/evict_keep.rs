//! evict_keep.rs — vm.evict graft: the Rust port of evict_keep.c.
//!
//! Same policy, same message, same answers (a test compares them with the C
//! sample's): the least recently used candidate that is not important, else
//! the least recently used of all. Message: u32 LE count, then count u32 LE
//! vpns (count <= 256, exactly 4 + 4 * count bytes); malformed is refused.
#![no_std]

mod vino;

vino_buffer!(vino::EVICT_BUFFER);

const MAX_IMPORTANT: usize = 256;

/// The important pages. Invariant: `vpns[..n]` is sorted ascending.
struct Important {
    vpns: [u32; MAX_IMPORTANT],
    n: usize,
}

static mut IMPORTANT: Important = Important { vpns: [0; MAX_IMPORTANT], n: 0 };

fn important() -> &'static mut Important {
    unsafe { &mut *core::ptr::addr_of_mut!(IMPORTANT) }
}

#[no_mangle]
pub extern "C" fn vino_message(len: i32) -> i32 {
    if len < 4 {
        return -1;
    }
    let m = vino_buf_bytes();
    let count = vino::load_u32(m, 0) as usize;
    if count > MAX_IMPORTANT || len as usize != 4 + 4 * count {
        return -1;
    }
    let set = important();
    // Insertion sort: at most 256 entries, once per message.
    for i in 0..count {
        let v = vino::load_u32(m, 4 + 4 * i);
        let mut j = i;
        while j > 0 && set.vpns[j - 1] > v {
            set.vpns[j] = set.vpns[j - 1];
            j -= 1;
        }
        set.vpns[j] = v;
    }
    set.n = count;
    0
}

fn is_important(vpn: u32) -> bool {
    let set = important();
    set.vpns[..set.n].binary_search(&vpn).is_ok()
}

#[no_mangle]
pub extern "C" fn vino_evict() -> i32 {
    let b: &vino::EvictBuf = vino_buf();
    let n = (b.n as usize).min(vino::EVICT_MAX);
    if n == 0 {
        return -1; // no valid answer: let the validator call the default
    }

    let mut lru = 0; // oldest candidate of all
    let mut victim: Option<(usize, u64)> = None; // oldest candidate that is not important
    for (i, cand) in b.cand[..n].iter().enumerate() {
        let age = cand.last_use;
        if age < b.cand[lru].last_use {
            lru = i;
        }
        if victim.map_or(true, |(_, best)| age < best) && !is_important(cand.vpn) {
            victim = Some((i, age));
        }
    }
    victim.map_or(lru, |(i, _)| i) as i32
}
