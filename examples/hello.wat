;; Hello world for Shoal's (and Bacalhau's) `wasm` engine: a WASI preview 1 command module.
;;
;; Prints `Hello, world!`, then each argument (argv[1..]) on its own line, then
;; `BACALHAU_PARTITION_INDEX=<n>` when that variable is set. Written as text so that it needs no
;; toolchain: the engine compiles `.wat` as well as `.wasm`.
;;
;;   shoal wasm run examples/hello.wat -- a b
;;
;; Memory layout: [0, 8) one iovec, [8, 16) two counters, [16, 128) constant strings,
;; [1024, ...) a bump heap for the argument and environment tables.
(module
  (import "wasi_snapshot_preview1" "fd_write"
    (func $fd_write (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_sizes_get"
    (func $args_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "args_get"
    (func $args_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_sizes_get"
    (func $environ_sizes_get (param i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "environ_get"
    (func $environ_get (param i32 i32) (result i32)))

  (memory (export "memory") 1)
  (global $heap (mut i32) (i32.const 1024))

  (data (i32.const 16) "Hello, world!\n")
  (data (i32.const 32) "BACALHAU_PARTITION_INDEX=")
  (data (i32.const 64) "\n")

  ;; Writes `len` bytes at `ptr` to stdout.
  (func $print (param $ptr i32) (param $len i32)
    (i32.store (i32.const 0) (local.get $ptr))
    (i32.store (i32.const 4) (local.get $len))
    (drop (call $fd_write (i32.const 1) (i32.const 0) (i32.const 1) (i32.const 8))))

  ;; Writes the NUL-terminated string at `ptr` and a newline.
  (func $println (param $ptr i32)
    (call $print (local.get $ptr) (call $strlen (local.get $ptr)))
    (call $print (i32.const 64) (i32.const 1)))

  (func $strlen (param $ptr i32) (result i32)
    (local $n i32)
    (block $end
      (loop $next
        (br_if $end (i32.eqz (i32.load8_u (i32.add (local.get $ptr) (local.get $n)))))
        (local.set $n (i32.add (local.get $n) (i32.const 1)))
        (br $next)))
    (local.get $n))

  ;; Whether the string at `ptr` starts with `len` bytes at `prefix`.
  (func $starts_with (param $ptr i32) (param $prefix i32) (param $len i32) (result i32)
    (local $i i32)
    (block $no
      (loop $next
        (if (i32.eq (local.get $i) (local.get $len)) (then (return (i32.const 1))))
        (br_if $no (i32.ne (i32.load8_u (i32.add (local.get $ptr) (local.get $i)))
                           (i32.load8_u (i32.add (local.get $prefix) (local.get $i)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))
    (i32.const 0))

  ;; Reserves `size` bytes on the heap, growing memory when needed.
  (func $alloc (param $size i32) (result i32)
    (local $ptr i32)
    (local.set $ptr (global.get $heap))
    (global.set $heap (i32.and (i32.add (i32.add (local.get $ptr) (local.get $size)) (i32.const 3))
                               (i32.const -4)))
    (if (i32.gt_u (global.get $heap) (i32.mul (memory.size) (i32.const 65536)))
      (then (drop (memory.grow
        (i32.sub (i32.add (i32.shr_u (global.get $heap) (i32.const 16)) (i32.const 1))
                 (memory.size))))))
    (local.get $ptr))

  (func (export "_start")
    (local $count i32) (local $table i32) (local $i i32) (local $entry i32)
    (call $print (i32.const 16) (i32.const 14))

    ;; Arguments after the program name, one per line.
    (drop (call $args_sizes_get (i32.const 8) (i32.const 12)))
    (local.set $count (i32.load (i32.const 8)))
    (local.set $table (call $alloc (i32.mul (local.get $count) (i32.const 4))))
    (drop (call $args_get (local.get $table) (call $alloc (i32.load (i32.const 12)))))
    (local.set $i (i32.const 1))
    (block $end
      (loop $next
        (br_if $end (i32.ge_u (local.get $i) (local.get $count)))
        (call $println (i32.load (i32.add (local.get $table) (i32.mul (local.get $i) (i32.const 4)))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))

    ;; The partition index, when the orchestrator set one.
    (drop (call $environ_sizes_get (i32.const 8) (i32.const 12)))
    (local.set $count (i32.load (i32.const 8)))
    (local.set $table (call $alloc (i32.mul (local.get $count) (i32.const 4))))
    (drop (call $environ_get (local.get $table) (call $alloc (i32.load (i32.const 12)))))
    (local.set $i (i32.const 0))
    (block $end
      (loop $next
        (br_if $end (i32.ge_u (local.get $i) (local.get $count)))
        (local.set $entry (i32.load (i32.add (local.get $table) (i32.mul (local.get $i) (i32.const 4)))))
        (if (call $starts_with (local.get $entry) (i32.const 32) (i32.const 25))
          (then (call $println (local.get $entry))))
        (local.set $i (i32.add (local.get $i) (i32.const 1)))
        (br $next)))))
