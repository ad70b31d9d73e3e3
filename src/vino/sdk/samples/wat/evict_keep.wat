;; evict_keep.wat — vm.evict graft: the WAT port of evict_keep.c.
;;
;; Same policy, same message, same answers (a test compares them with the C
;; sample's): the least recently used candidate that is not important, else
;; the least recently used of all. Message: u32 LE count, then count u32 LE
;; vpns (count <= 256, exactly 4 + 4 * count bytes); malformed is refused.
;;
;; Memory: the buffer at 1024 (8 + 24 * 256 bytes, candidates from 1032); the
;; important set at 8192 (256 u32s).
(module
  (memory (export "memory") 1 16)

  ;; Invariant: the u32s at 8192 .. 8192 + 4 * $n are sorted ascending.
  (global $n (mut i32) (i32.const 0))

  (func (export "vino_buffer") (result i32) (i32.const 1024))

  (func (export "vino_message") (param $len i32) (result i32)
    (local $count i32) (local $i i32) (local $j i32) (local $v i32) (local $prev i32)
    (if (i32.lt_s (local.get $len) (i32.const 4)) (then (return (i32.const -1))))
    (local.set $count (i32.load (i32.const 1024)))
    (if (i32.gt_u (local.get $count) (i32.const 256)) (then (return (i32.const -1))))
    (if (i32.ne (local.get $len) (i32.add (i32.const 4) (i32.shl (local.get $count) (i32.const 2))))
      (then (return (i32.const -1))))
    ;; Insertion sort: at most 256 entries, once per message.
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $i) (local.get $count)))
        (local.set $v (i32.load offset=1028 (i32.shl (local.get $i) (i32.const 2))))
        (local.set $j (local.get $i))
        (block $placed
          (loop $shift
            (br_if $placed (i32.eqz (local.get $j)))
            (local.set $prev (i32.load offset=8188 (i32.shl (local.get $j) (i32.const 2))))
            (br_if $placed (i32.le_u (local.get $prev) (local.get $v)))
            (i32.store offset=8192 (i32.shl (local.get $j) (i32.const 2)) (local.get $prev))
            (local.set $j (i32.sub (local.get $j) (i32.const 1)))
            (br $shift)))
        (i32.store offset=8192 (i32.shl (local.get $j) (i32.const 2)) (local.get $v))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $each)))
    (global.set $n (local.get $count))
    (i32.const 0))

  ;; Binary search of the important set.
  (func $important (param $vpn i32) (result i32)
    (local $lo i32) (local $hi i32) (local $mid i32)
    (local.set $hi (global.get $n))
    (block $done
      (loop $search
        (br_if $done (i32.ge_u (local.get $lo) (local.get $hi)))
        (local.set $mid (i32.add (local.get $lo)
                                 (i32.shr_u (i32.sub (local.get $hi) (local.get $lo)) (i32.const 1))))
        (if (i32.lt_u (i32.load offset=8192 (i32.shl (local.get $mid) (i32.const 2)))
                      (local.get $vpn))
          (then (local.set $lo (i32.add (local.get $mid) (i32.const 1))))
          (else (local.set $hi (local.get $mid))))
        (br $search)))
    (i32.and (i32.lt_u (local.get $lo) (global.get $n))
             (i32.eq (i32.load offset=8192 (i32.shl (local.get $lo) (i32.const 2)))
                     (local.get $vpn))))

  (func (export "vino_evict") (result i32)
    (local $n i32) (local $i i32) (local $lru i32) (local $victim i32) (local $c i32)
    (local $use i64) (local $vuse i64)
    (local.set $n (i32.load (i32.const 1024)))
    (if (i32.gt_u (local.get $n) (i32.const 256)) (then (local.set $n (i32.const 256))))
    ;; No valid answer: let the validator call the default.
    (if (i32.eqz (local.get $n)) (then (return (i32.const -1))))
    (local.set $victim (i32.const -1))
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (local.set $c (i32.add (i32.const 1032) (i32.mul (local.get $i) (i32.const 24))))
        (local.set $use (i64.load offset=16 (local.get $c)))
        (if (i64.lt_u (local.get $use)
                      (i64.load offset=1048 (i32.mul (local.get $lru) (i32.const 24))))
          (then (local.set $lru (local.get $i))))
        (if (i32.or (i32.lt_s (local.get $victim) (i32.const 0))
                    (i64.lt_u (local.get $use) (local.get $vuse)))
          (then
            (if (i32.eqz (call $important (i32.load offset=4 (local.get $c))))
              (then
                (local.set $victim (local.get $i))
                (local.set $vuse (local.get $use))))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $each)))
    (select (local.get $victim) (local.get $lru) (i32.ge_s (local.get $victim) (i32.const 0)))))
