;; fs.readahead: asks to prefetch a block far past the end of the file.
;; Expected: aborted (invalid_result); the default read-ahead runs; the read succeeds.
(module
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_readahead") (result i32)
    (i32.store (i32.const 80) (i32.const 0x7fffffff))
    i32.const 1))
