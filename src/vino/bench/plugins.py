"""One plugin four ways: vino, Extism, wasmtime-py and pluggy, side by side.

The plugin task is a shop's discount rule, ``discount(price_cents, qty)``: 10 %
off the line from 10 items up, else nothing. Each system runs the same rule:

- **vino**: a WAT graft in a ``FunctionPoint`` whose ``decode`` validates the
  answer (0 <= discount <= price * qty) and whose default is "no discount";
- **Extism** (``pip install extism``): the same rule as an Extism plugin, written
  in WAT against Extism's kernel imports (input and output through its memory);
- **wasmtime-py**: the same WAT function called through wasmtime's public API;
- **pluggy**: a Python hook implementation, ``firstresult``.

``run()`` measures the cost per call of each (interleaved rounds, see
``timing``) and, in the same run, *probes* what each does when the plugin
misbehaves: it traps; it answers out of range; it loops forever; it changes
host state and then traps. A probe that would hang the process (a runaway loop
where the system offers no limit) is not run, and the table says so.
``render()`` gives the README's markdown table. ``vino bench plugins`` prints it.
"""

from __future__ import annotations

import platform
import struct
import time
from collections.abc import Callable
from typing import Any, Final

import wasmtime

from vino.bench.timing import Contender, interleave, plain, ratio, spread
from vino.report import markdown_table

_PRICE_QTY: Final = struct.Struct("<II")  # the discount buffer: price, qty (u32 each)
RUNAWAY_BUDGET_S: Final = 0.05  # CPU budget per call given to the runaway-loop probes
EXTISM_TIMEOUT_MS: Final = 50  # Extism's own per-call time-out for the same probe

# The rule, in WAT, with its body spliced in: $p price, $q qty -> discount.
_RULE: Final = """
    (if (result i32) (i32.ge_u (local.get $q) (i32.const 10))
      (then (i32.div_u (i32.mul (local.get $p) (local.get $q)) (i32.const 10)))
      (else (i32.const 0)))"""
_TRAP: Final = "(unreachable)"
_NEGATIVE: Final = "(i32.const -5)"
_LOOP: Final = "(loop $l (br $l)) (i32.const 0)"


def _python_rule(price: int, qty: int) -> int:
    return price * qty // 10 if qty >= 10 else 0


# ---- vino ------------------------------------------------------------------------------


def _vino_wat(body: str, touch: bool = False) -> str:
    pre = "(drop (call $add_points (i32.const 100)))" if touch else ""
    imp = ('(import "vino" "add_points" (func $add_points (param i32) (result i32)))'
           if touch else "")
    return f"""(module {imp}
  (memory (export "memory") 1)
  (func (export "vino_buffer") (result i32) (i32.const 0))
  (func (export "discount") (result i32) (local $p i32) (local $q i32)
    (local.set $p (i32.load (i32.const 0))) (local.set $q (i32.load (i32.const 4)))
    {pre} {body}))"""


class VinoShop:
    """The shop's discount point and a loyalty account the graft may credit (undoably)."""

    def __init__(self) -> None:
        from vino.graft import (
            I32,
            FunctionPoint,
            InvalidResult,
            Principal,
            Quota,
            Registry,
            any_principal,
            graft_callable,
        )

        self.loyalty: dict[str, int] = {"points": 0}

        @graft_callable("add_points", (I32,))
        def add_points(txn: Any, n: int) -> int:
            txn.setitem(self.loyalty, "points", self.loyalty["points"] + n)  # undone on abort
            return 0

        def encode(buf: Any, price: int, qty: int) -> tuple[int, ...]:
            _PRICE_QTY.pack_into(buf, 0, price, qty)
            return ()

        def decode(buf: Any, ret: int, price: int, qty: int) -> int:
            if not 0 <= ret <= price * qty:
                raise InvalidResult(f"discount {ret} outside 0..{price * qty}")
            return ret

        self.registry = Registry(remove_after=1)
        self.point = self.registry.declare(FunctionPoint[object, int, int, int](
            name="shop.discount", entry="discount", buffer_size=16, encode=encode,
            decode=decode, default=lambda price, qty: 0, callables=(add_points,),
            may_install=any_principal, target_type=object))
        self.owner = Principal("shop", quota=Quota(cpu_call_s=RUNAWAY_BUDGET_S))

    def install(self, body: str, touch: bool = False) -> Any:
        return self.registry.install(self.point, _vino_wat(body, touch), self.owner, "line",
                                     replace=True)

    def close(self) -> None:
        self.registry.close()


# ---- wasmtime-py -----------------------------------------------------------------------


class PublicWasmtime:
    """The rule as a plain exported function, called through wasmtime's public API."""

    def __init__(self, body: str = _RULE, touch: bool = False) -> None:
        self.state = {"points": 0}
        engine = wasmtime.Engine()
        self.store = wasmtime.Store(engine)
        linker = wasmtime.Linker(engine)
        ty = wasmtime.FuncType([wasmtime.ValType.i32()], [wasmtime.ValType.i32()])

        def add_points(n: int) -> int:
            self.state["points"] += n
            return 0

        linker.define_func("host", "add_points", ty, add_points)
        imp = '(import "host" "add_points" (func $add_points (param i32) (result i32)))'
        pre = "(drop (call $add_points (i32.const 100)))" if touch else ""
        wat = (f'(module {imp} (func (export "discount") (param $p i32) (param $q i32) '
               f"(result i32) {pre} {body}))")
        inst = linker.instantiate(self.store, wasmtime.Module(engine, wat))
        func = inst.exports(self.store)["discount"]
        assert isinstance(func, wasmtime.Func)
        self.func = func

    def __call__(self, price: int, qty: int) -> int:
        result = self.func(self.store, price, qty)
        assert isinstance(result, int)
        return result


# ---- Extism ------------------------------------------------------------------------------


def _extism_wat(body: str) -> str:
    env = '"extism:host/env"'
    return f"""(module
  (import {env} "input_load_u64" (func $in (param i64) (result i64)))
  (import {env} "alloc" (func $alloc (param i64) (result i64)))
  (import {env} "store_u64" (func $store (param i64 i64)))
  (import {env} "output_set" (func $out (param i64 i64)))
  (memory (export "memory") 1)
  (func (export "discount") (result i32) (local $x i64) (local $p i32) (local $q i32)
    (local $r i32) (local $at i64)
    (local.set $x (call $in (i64.const 0)))
    (local.set $p (i32.wrap_i64 (local.get $x)))
    (local.set $q (i32.wrap_i64 (i64.shr_u (local.get $x) (i64.const 32))))
    (local.set $r {body})
    (local.set $at (call $alloc (i64.const 8)))
    (call $store (local.get $at) (i64.extend_i32_s (local.get $r)))
    (call $out (local.get $at) (i64.const 8))
    (i32.const 0)))"""


def extism_available() -> str | None:
    """Extism's version, or ``None`` if it cannot run here."""
    try:
        if ExtismPlugin()(1000, 12) != 1200:
            return None
    except Exception:  # not installed, or its native library does not load here
        return None
    try:
        from importlib.metadata import version

        return version("extism")
    except Exception:
        return "?"


class ExtismPlugin:
    """The rule as an Extism plugin (a manifest with Extism's own time-out)."""

    def __init__(self, body: str = _RULE) -> None:
        import base64

        import extism

        wasm = wasmtime.wat2wasm(_extism_wat(body))
        manifest = {"wasm": [{"data": base64.b64encode(wasm).decode()}],
                    "timeout_ms": EXTISM_TIMEOUT_MS}
        self.plugin = extism.Plugin(manifest, wasi=False)

    def __call__(self, price: int, qty: int) -> int:
        out = self.plugin.call("discount", price.to_bytes(4, "little") + qty.to_bytes(4, "little"))
        return int.from_bytes(bytes(out)[:8], "little", signed=True)


# ---- pluggy ------------------------------------------------------------------------------


def _pluggy(rule: Callable[[int, int], int], state: dict[str, int] | None = None
            ) -> Callable[[int, int], Any]:
    import pluggy

    spec = pluggy.HookspecMarker("shop")
    impl = pluggy.HookimplMarker("shop")

    class Spec:
        @spec(firstresult=True)
        def discount(self, price: int, qty: int) -> int:  # type: ignore[empty-body]
            """The line's discount, in cents."""

    class Plugin:
        @impl
        def discount(self, price: int, qty: int) -> int:
            if state is not None:
                state["points"] += 100
            return rule(price, qty)

    pm = pluggy.PluginManager("shop")
    pm.add_hookspecs(Spec)
    pm.register(Plugin())
    hook = pm.hook.discount
    return lambda price, qty: hook(price=price, qty=qty)


def _trap(price: int, qty: int) -> int:
    raise RuntimeError("plugin bug")


# ---- probes ------------------------------------------------------------------------------


def _outcome(call: Callable[[], Any]) -> str:
    """What the caller sees: the answer, or the exception's type."""
    try:
        return f"gets {call()}"
    except Exception as exc:
        return f"raises {type(exc).__name__}"


def _probe_vino() -> dict[str, str]:
    shop = VinoShop()
    try:
        out: dict[str, str] = {}
        g = shop.install(_TRAP)
        out["trap"] = (_outcome(lambda: shop.point("line", 1000, 12))
                       + f" (the default); graft {g.state}")
        shop.install(_NEGATIVE)
        out["range"] = _outcome(lambda: shop.point("line", 1000, 12)) + " (rejected, default)"
        shop.install(_LOOP)
        t = time.perf_counter()
        res = _outcome(lambda: shop.point("line", 1000, 12))
        out["loop"] = f"stopped after {(time.perf_counter() - t) * 1e3:.0f} ms, {res}"
        shop.install(_TRAP, touch=True)
        shop.point("line", 1000, 12)
        out["state"] = ("undone (points stay 0)" if shop.loyalty["points"] == 0
                        else f"kept ({shop.loyalty['points']} points)")
        return out
    finally:
        shop.close()


def _probe_wasmtime() -> dict[str, str]:
    out = {"trap": _outcome(lambda: PublicWasmtime(_TRAP)(1000, 12)),
           "range": _outcome(lambda: PublicWasmtime(_NEGATIVE)(1000, 12)) + " (unchecked)",
           "loop": "no limit unless the host sets up fuel or epochs (not run: would hang)"}
    w = PublicWasmtime(_TRAP, touch=True)
    _outcome(lambda: w(1000, 12))
    out["state"] = ("undone" if w.state["points"] == 0
                    else f"kept ({w.state['points']} points)")
    return out


def _probe_extism() -> dict[str, str]:
    out = {"trap": _outcome(lambda: ExtismPlugin(_TRAP)(1000, 12)),
           "range": _outcome(lambda: ExtismPlugin(_NEGATIVE)(1000, 12)) + " (unchecked)"}
    p = ExtismPlugin(_LOOP)
    t = time.perf_counter()
    res = _outcome(lambda: p(1000, 12))
    out["loop"] = (f"stopped after {(time.perf_counter() - t) * 1e3:.0f} ms "
                   f"(manifest timeout_ms), {res}")
    out["state"] = "no transactions (host functions' effects stay; not probed)"
    return out


def _probe_pluggy() -> dict[str, str]:
    state = {"points": 0}
    _outcome(lambda: _pluggy(_trap, state)(1000, 12))
    return {"trap": _outcome(lambda: _pluggy(_trap)(1000, 12)),
            "range": _outcome(lambda: _pluggy(lambda p, q: -5)(1000, 12)) + " (unchecked)",
            "loop": "no limit (not run: would hang)",
            "state": "undone" if state["points"] == 0 else f"kept ({state['points']} points)"}


# ---- the run -----------------------------------------------------------------------------


def run(rounds: int = 9, batch_s: float = 0.05,
        progress: Callable[[str], None] | None = None) -> dict[str, Any]:
    """Cost per call of each system and what each does with a misbehaving plugin."""
    say = progress or (lambda msg: None)
    extism_version = extism_available()
    shop = VinoShop()
    try:
        shop.install(_RULE)
        assert shop.point("line", 1000, 12) == _python_rule(1000, 12) == 1200
        contenders = [Contender("vino", plain(shop.point, "line", 1000, 12)),
                      Contender("wasmtime-py", plain(PublicWasmtime(), 1000, 12)),
                      Contender("pluggy", plain(_pluggy(_python_rule), 1000, 12))]
        if extism_version:
            ext = ExtismPlugin()
            assert ext(1000, 12) == 1200
            contenders.append(Contender("Extism", plain(ext, 1000, 12)))
        say("timing")
        series = interleave(contenders, rounds, batch_s, progress=say, label="plugins: ")
    finally:
        shop.close()
    say("probing misbehaving plugins")
    probes = {"vino": _probe_vino(), "wasmtime-py": _probe_wasmtime(),
              "pluggy": _probe_pluggy()}
    if extism_version:
        probes["Extism"] = _probe_extism()
    return {
        "machine": f"{platform.processor() or platform.machine()}, Python "
                   f"{platform.python_version()}",
        "extism": extism_version,
        "per_call_us": {k: spread(v).as_dict() for k, v in series.items()},
        "vs_pluggy": {k: ratio(v, series["pluggy"]).median_us for k, v in series.items()},
        "probes": probes,
    }


_SYSTEMS: Final = ("vino", "Extism", "wasmtime-py", "pluggy")
_STATIC: Final = {  # by design, from each system's documentation
    "plugin isolated from the host's memory": ("yes", "yes", "yes", "no (Python)"),
    "answer validated before the caller sees it": ("yes (decode)", "no", "no", "no"),
    "failing plugin removed": ("yes (remove_after)", "no", "no", "no"),
    "quotas per installer (CPU, memory, host memory)": (
        "yes", "per plugin: timeout, memory pages", "do it yourself (fuel, limits)", "no"),
}


def render(result: dict[str, Any]) -> str:
    """The README's comparison table (markdown)."""
    cols = [s for s in _SYSTEMS if s in result["per_call_us"] or s == "Extism"]
    rows: list[list[str]] = []

    def cost(s: str) -> str:
        f = result["per_call_us"].get(s)
        if f is None:
            return "cannot run here (`pip install extism` failed or its library did not load)"
        return f"{f['median_us']:.2f} µs ({result['vs_pluggy'][s]:.1f} x pluggy)"

    rows.append(["cost per call (median, this run)", *(cost(s) for s in cols)])
    probes = result["probes"]
    for key, label in (("trap", "plugin traps: the caller"), ("range",
                       "plugin answers -5 (out of range): the caller"),
                       ("loop", "plugin loops forever"),
                       ("state", "host state changed, then the plugin traps")):
        rows.append([label, *(probes.get(s, {}).get(key, "-") for s in cols)])
    for label, row in _STATIC.items():
        by = dict(zip(_SYSTEMS, row, strict=True))
        rows.append([label, *(by[s] for s in cols)])
    return markdown_table(["", *cols], rows)
