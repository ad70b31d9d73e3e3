;; fs.filter: scrambles half of the block in place, then traps mid-block.
;; Expected: aborted (trap); the block is written unfiltered by the default; no data lost.
(module
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_filter") (param $dir i32) (param $len i32) (result i32) (local $i i32)
    (block $half
      (loop $each
        (br_if $half (i32.ge_u (local.get $i) (i32.div_u (local.get $len) (i32.const 2))))
        (i32.store8 (i32.add (i32.const 16) (local.get $i)) (i32.const 0x5a))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $each)))
    unreachable))
