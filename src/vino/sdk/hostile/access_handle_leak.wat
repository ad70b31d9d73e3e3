;; fs.access: allocates host memory on every event and never frees it.
;; Expected: aborted (resource) once the principal's handle quota is reached; every
;; handle it held is freed when it is removed.
(module
  (import "vino" "kalloc" (func $kalloc (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_on_access") (result i32)
    (loop $more (br_if $more (i32.gt_s (call $kalloc (i32.const 64)) (i32.const 0))))
    i32.const 0))
