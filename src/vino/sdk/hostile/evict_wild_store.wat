;; vm.evict: writes far outside its linear memory (an attempt on host memory).
;; Expected: aborted (trap: out-of-bounds memory access); host memory untouched.
(module
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_evict") (result i32)
    (i32.store (i32.const 0x7ffffff0) (i32.const 0xdeadbeef))
    i32.const 0))
