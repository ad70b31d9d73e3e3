;; sched.pick: boosts a thread of another user's group through the accessor, then
;; picks a thread index that does not exist. Expected: aborted (forbidden_call) at
;; the accessor; the priority is unchanged; round robin picks.
(module
  (import "vino" "sched_set_priority" (func $setprio (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_pick") (result i32)
    (drop (call $setprio (i32.const 1) (i32.const 99)))
    (i32.add (i32.load (i32.const 0)) (i32.const 7))))
