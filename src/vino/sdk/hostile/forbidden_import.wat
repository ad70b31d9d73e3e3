;; Any point: imports a function that is not a graft-callable.
;; Expected: rejected at load time, naming the import; nothing changes.
(module
  (import "env" "system" (func $system (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_readahead") (result i32) (call $system (i32.const 0))))
