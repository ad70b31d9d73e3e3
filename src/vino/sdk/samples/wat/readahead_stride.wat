;; readahead_stride.wat — fs.readahead graft: the WAT port of readahead_stride.c.
;;
;; Same policy, same message, same answers (a test compares them with the C
;; sample's): prefetch along the application's stride, or along a stride the
;; last three accesses agree on, once per window. See the C file for the policy
;; in full. The buffer is at 1024 (256 bytes; offsets from vino.wat).
(module
  (memory (export "memory") 1 16)

  ;; The application's stride, in blocks; 0 = learn from the history.
  (global $explicit (mut i32) (i32.const 0))
  ;; Set by $learned: the pattern was just recognised.
  (global $fresh (mut i32) (i32.const 0))

  (func (export "vino_buffer") (result i32) (i32.const 1024))

  (func (export "vino_message") (param $len i32) (result i32)
    (if (i32.ne (local.get $len) (i32.const 4)) (then (return (i32.const -1))))
    (global.set $explicit (i32.load (i32.const 1024)))
    (i32.const 0))

  ;; The stride of the last three accesses if they agree, else 0.
  (func $learned (param $nhist i32) (result i64)
    (local $m i32) (local $i i32) (local $h i64) (local $d1 i64)
    (local $s0 i64) (local $s1 i64) (local $s2 i64) (local $s3 i64)
    (global.set $fresh (i32.const 0))
    (local.set $s0 (i64.extend_i32_u (i32.load offset=4 (i32.const 1024))))
    (local.set $m (i32.const 1))
    ;; hist[0] may repeat the block just read: skip it if so.
    (if (i32.and (i32.gt_u (local.get $nhist) (i32.const 0))
                 (i32.eq (i32.load offset=16 (i32.const 1024))
                         (i32.load offset=4 (i32.const 1024))))
      (then (local.set $i (i32.const 1))))
    (block $done
      (loop $next
        (br_if $done (i32.ge_u (local.get $i) (local.get $nhist)))
        (br_if $done (i32.ge_u (local.get $m) (i32.const 4)))
        (local.set $h (i64.extend_i32_u
          (i32.load offset=1040 (i32.shl (local.get $i) (i32.const 2)))))
        (if (i32.eq (local.get $m) (i32.const 1))
          (then (local.set $s1 (local.get $h)))
          (else (if (i32.eq (local.get $m) (i32.const 2))
            (then (local.set $s2 (local.get $h)))
            (else (local.set $s3 (local.get $h))))))
        (local.set $m (i32.add (local.get $m) (i32.const 1)))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (if (i32.lt_u (local.get $m) (i32.const 3)) (then (return (i64.const 0))))
    (local.set $d1 (i64.sub (local.get $s0) (local.get $s1)))
    (if (i64.ne (local.get $d1) (i64.sub (local.get $s1) (local.get $s2)))
      (then (return (i64.const 0))))
    (global.set $fresh
      (i32.or (i32.lt_u (local.get $m) (i32.const 4))
              (i64.ne (i64.sub (local.get $s2) (local.get $s3)) (local.get $d1))))
    (local.get $d1))

  (func (export "vino_readahead") (result i32)
    (local $maxout i32) (local $nhist i32) (local $count i32)
    (local $stride i64) (local $step i64) (local $next i64) (local $end i64)
    ;; Never trust the host's counts beyond the arrays they index.
    (local.set $maxout (i32.load offset=8 (i32.const 1024)))
    (if (i32.gt_u (local.get $maxout) (i32.const 32)) (then (local.set $maxout (i32.const 32))))
    (local.set $nhist (i32.load offset=12 (i32.const 1024)))
    (if (i32.gt_u (local.get $nhist) (i32.const 16)) (then (local.set $nhist (i32.const 16))))
    (global.set $fresh (i32.const 0))
    (if (global.get $explicit)
      (then (local.set $stride (i64.extend_i32_u (global.get $explicit))))
      (else (local.set $stride (call $learned (local.get $nhist)))))
    (if (i32.or (i64.eqz (local.get $stride)) (i32.eqz (local.get $maxout)))
      (then (return (i32.const 0))))
    ;; Once per window: mid-window blocks were already asked for.
    (if (i32.and (i32.eqz (global.get $explicit)) (i32.eqz (global.get $fresh)))
      (then
        (local.set $step
          (select (i64.sub (i64.const 0) (local.get $stride)) (local.get $stride)
                  (i64.lt_s (local.get $stride) (i64.const 0))))
        (if (i64.ne (i64.rem_u
                      (i64.div_u (i64.extend_i32_u (i32.load offset=4 (i32.const 1024)))
                                 (local.get $step))
                      (i64.extend_i32_u (local.get $maxout)))
                    (i64.const 0))
          (then (return (i32.const 0))))))
    (local.set $next (i64.extend_i32_u (i32.load offset=4 (i32.const 1024))))
    (local.set $end (i64.extend_i32_u (i32.load (i32.const 1024))))
    (block $done
      (loop $more
        (br_if $done (i32.ge_u (local.get $count) (local.get $maxout)))
        (local.set $next (i64.add (local.get $next) (local.get $stride)))
        (br_if $done (i64.lt_s (local.get $next) (i64.const 0)))
        (br_if $done (i64.ge_s (local.get $next) (local.get $end)))
        (i32.store offset=1104 (i32.shl (local.get $count) (i32.const 2))
                   (i32.wrap_i64 (local.get $next)))
        (local.set $count (i32.add (local.get $count) (i32.const 1)))
        (br $more)))
    (local.get $count)))
