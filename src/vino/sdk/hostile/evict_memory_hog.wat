;; vm.evict: grows its memory page after page, past its principal's quota.
;; Expected: aborted (resource); every page it held is given back.
(module
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_evict") (result i32)
    (loop $more
      (br_if $more (i32.ne (memory.grow (i32.const 16)) (i32.const -1))))
    i32.const 0))
