;; sched.pick: raises the priority of every thread of its own group (legal accessor
;; calls), then traps. Expected: aborted (trap); every priority restored, in reverse order.
(module
  (import "vino" "sched_set_priority" (func $setprio (param i32 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) i32.const 0)
  (func (export "vino_pick") (result i32) (local $i i32) (local $n i32)
    (local.set $n (i32.load (i32.const 0)))
    (block $done
      (loop $each
        (br_if $done (i32.ge_u (local.get $i) (local.get $n)))
        (drop (call $setprio
          (i32.load (i32.add (i32.const 8) (i32.mul (local.get $i) (i32.const 32))))
          (i32.add (local.get $i) (i32.const 50))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $each)))
    unreachable))
