;; vm.evict: names a victim that is not among the candidates (index n + 100).
;; Expected: aborted (invalid_result); the default clock picks the victim.
(module
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_evict") (result i32)
    (i32.add (i32.load (i32.const 0)) (i32.const 100))))
