;; fs.readahead: never returns.
;; Expected: aborted (timeout) within its CPU budget; the read completes with the default.
(module
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_readahead") (result i32)
    (loop $forever (br $forever))
    i32.const 0))
