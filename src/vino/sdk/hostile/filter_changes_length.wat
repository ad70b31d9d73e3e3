;; fs.filter: claims to have produced one byte less than it was given.
;; Expected: aborted (invalid_result); the identity default writes the block; no data lost.
(module
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_filter") (param $dir i32) (param $len i32) (result i32)
    (i32.sub (local.get $len) (i32.const 1))))
