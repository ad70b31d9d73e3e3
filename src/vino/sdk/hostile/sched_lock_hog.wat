;; sched.pick: takes its group's lock and then spins forever, holding it.
;; Expected: a thread that waits for the lock longer than the lock time-out dooms the
;; graft: aborted (lock_timeout), lock released, the waiter proceeds.
(module
  (import "vino" "lock" (func $lock (param i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_pick") (result i32)
    (drop (call $lock (i32.const 1)))
    (loop $forever (br $forever))
    i32.const 0))
