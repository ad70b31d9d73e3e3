;; vino.wat — the graft SDK for WebAssembly text: vino.h's declarations, in WAT.
;;
;; This file is the WAT spelling of docs/ABI.md. Where they disagree, ABI.md
;; wins and this file is the bug.
;;
;; WAT has no include: copy the import lines a graft uses from here into the
;; graft's module (a graft may import only what its point lists, and a module
;; that imports something it does not use is still checked against that list).
;;
;; BUILDING
;;   vino graft build my_graft.wat -o my_graft.wasm
;; assembles the text with wasmtime's own assembler and refuses imports from
;; any module but "vino". A .wat file can also be installed as it is: the
;; loader accepts WebAssembly text.
;;
;; WHAT A GRAFT LOOKS LIKE
;;   (module
;;     (memory (export "memory") 1 16)             ;; 1 page, at most 16
;;     (func (export "vino_buffer") (result i32) (i32.const 1024))
;;     (func (export "vino_readahead") (result i32)
;;       ;; inputs at 1024 (offsets below), outputs written at 1024 + 80
;;       (i32.const 0)))
;; Optionally (func (export "vino_message") (param $len i32) (result i32)):
;; the installing principal's bytes are at the buffer; negative refuses them.
;;
;; This module is itself valid: `vino graft build vino.wat` assembles it.
(module
  ;; ---- graft-callables common to every point ----------------------------------
  (import "vino" "now" (func $now (result i64)))                  ;; monotonic ns
  (import "vino" "log" (func $log (param i32 i32)))               ;; (ptr, len)
  (import "vino" "lock" (func $lock (param i32) (result i32)))    ;; 0 held, -1 refused
  (import "vino" "kalloc" (func $kalloc (param i32) (result i32)));; size -> handle > 0
  (import "vino" "kfree" (func $kfree (param i32)))               ;; handle
  (import "vino" "kread" (func $kread (param i32 i32 i32 i32) (result i32)))   ;; (h, off, ptr, len)
  (import "vino" "kwrite" (func $kwrite (param i32 i32 i32 i32) (result i32))) ;; (h, off, ptr, len)
  (import "vino" "default" (func $default (result i32)))          ;; function points only

  ;; ---- graft-callables of particular points ------------------------------------
  ;; vm.evict:   (import "vino" "vm_hint" (func $vm_hint (param i32 i32) (result i32)))
  ;; sched.pick: (import "vino" "sched_set_priority"
  ;;                 (func $sched_set_priority (param i32 i32) (result i32)))

  ;; ---- buffer layouts (little-endian; byte offsets from the buffer) -----------
  ;; fs.readahead  buffer 256:  0 file_blocks u32 | 4 block u32 | 8 max_out u32 (<= 32)
  ;;               12 n_hist u32 (<= 16) | 16 hist[16] u32 | 80 out[32] u32 (output)
  ;;               entry (func (export "vino_readahead") (result i32))  = count
  ;; vm.evict      buffer 8 + 24 * 256:  0 n u32 | 4 pad | 8 + 24 i: page_id u32,
  ;;               vpn u32, flags u32 (1 referenced, 2 dirty), pad u32, last_use u64
  ;;               entry (func (export "vino_evict") (result i32))  = victim index
  ;;               (or a batch: k further victims as u32 indices at 6152, and the
  ;;               answer victim + 65536 * k, k <= 31; docs/ABI.md)
  ;; sched.pick    buffer 8 + 32 * 64:  0 n u32 | 4 pad | 8 + 32 i: tid u32,
  ;;               priority i32, cpu_ns u64, waited_ns u64, flags u32 (1 interactive), pad
  ;;               entry (func (export "vino_pick") (result i32))  = thread index
  ;; fs.filter     buffer 16 + 4096:  0 file_offset u64 | 8 len u32 | 12 file_id u32
  ;;               16 data[len] (in place)
  ;;               entry (func (export "vino_filter") (param $dir i32) (param $len i32)
  ;;                      (result i32))  = len; dir 0 write (plaintext in), 1 read
  ;; fs.access     buffer 24:  0 file_id u32 | 4 block u32 | 8 op u32 (0 read, 1 write)
  ;;               12 pad | 16 time_ns u64
  ;;               entry (func (export "vino_on_access") (result i32))  negative aborts
  (memory (export "memory") 1 16)
  (func (export "vino_buffer") (result i32) (i32.const 1024)))
