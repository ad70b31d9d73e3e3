"""Graft point declarations: function points and event points.

A graft point is declared by host code once, registered with a ``Registry``
(which links its graft-callables), and then called on the hot path:

    point = FunctionPoint(name="fs.readahead", entry="vino_readahead", ...)
    registry.declare(point)
    blocks = point(open_file, block)      # default, or the installed graft

A point is typed by what it is called with: ``FunctionPoint[T, *Args, R]`` is called
as ``point(target: T, *args: Args) -> R`` (``EventPoint[T, *Args]`` answers how many
handlers committed); mypy infers the types from the codecs and ``target_type``, and
``Registry.declare`` returns the point with them. The registry and the grafts see every
point erased (``Point``): arguments reach a graft only through its point's ``__call__``.

What a point declares (docs/DESIGN.md §3), all by keyword:
- ``entry``, ``params``, ``result``: the export a graft must define and its Wasm type;
- ``buffer_size``: bytes of the graft's scratch buffer the host uses;
- ``encode(buf, *args) -> tuple[int, ...]``: write the inputs into the buffer and
  return the entry's arguments;
- ``decode(buf, ret, *args) -> R``: read and *validate* the output (raise
  ``InvalidResult``); ``encode_result(buf, R, *args) -> int`` is its inverse,
  used by the ``default`` graft-callable;
- ``default(*args) -> R``: the built-in policy;
- ``callables``: the point's own graft-callables (beyond the common ones);
- ``target_type``: the kind of object a target must be (a class or a tuple of
  classes; ``object`` for any; ``GLOBAL`` is always a target). The loader checks it
  before anything else, so a rights rule never sees a target of the wrong kind;
- ``target_gone(target) -> str | None``: why a target has ended (a file closed),
  or None; an ended target is refused, at admission and again at the switch;
- ``may_install(principal, target) -> bool``: who may graft what; ``GLOBAL`` is
  the target meaning "every target without a graft of its own". The default,
  ``owner_or_privileged``, lets a principal graft only targets it owns
  (``target.owner``) and only privileged principals graft ``GLOBAL``; whatever
  the rule, a principal may replace or remove only its own grafts (privileged
  principals, any).

Dispatch with no graft installed costs one dict lookup and the default. With the
native fast path, ``FunctionPoint.__call__`` is its C twin (``fastpath.c``'s
``Dispatch``: the same steps as ``_dispatch`` below, without a Python frame); without
it (or with ``VINO_FASTPATH=python`` or ``crossings``), ``_dispatch`` itself.
"""

from __future__ import annotations

import struct
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Final, Generic, Never, TypeVar, TypeVarTuple

from vino import limits
from vino.errors import InvalidDeclaration
from vino.graft import fastpath
from vino.graft.fastcall import I32, I64

if TYPE_CHECKING:
    from vino.graft.accounting import Principal
    from vino.graft.invoke import Graft
    from vino.graft.layout import Layout
    from vino.graft.locks import HostLock
    from vino.graft.registry import Registry
    from vino.graft.txn import Transaction

R = TypeVar("R", covariant=True)  # a point of int answers is a point of object answers
T = TypeVar("T", contravariant=True)  # a point taking any target takes an Inode
Args = TypeVarTuple("Args")  # the arguments after the target, as the codecs take them
S = TypeVar("S")  # what a sealing slot records (FunctionPoint.on_first_in_place)


class _Global:
    """The target of a global graft: used for every target without its own."""

    __slots__ = ()

    def __repr__(self) -> str:
        return "GLOBAL"


GLOBAL: Final = _Global()


def describe_target(target: object) -> str:
    """How a message to a principal names a target: ``GLOBAL``, a name or number the
    application chose, else only its kind ("this Inode") -- never its ``repr``, which shows
    its owner's data to whoever was refused it (a file's size, blocks and opens, an
    address space's faults, a principal's quota and usage)."""
    if target is GLOBAL:
        return "GLOBAL"
    if isinstance(target, str):
        return repr(str(target))
    if isinstance(target, int) and not isinstance(target, bool):
        return repr(int(target))
    return f"this {type(target).__name__}"


class Context(StrEnum):
    """Which of a graft's exports is running: what its graft-callables may assume.

    A graft's code runs only inside one of these, each in its own transaction.
    """

    ENTRY = "entry"  # the point's entry, during an invocation: the inputs are the call's
    EVENT = "event"  # an event handler (an event point's entry)
    MESSAGE = "message"  # vino_message: a message from the installing principal
    INSTALL = "install"  # vino_buffer, once, while the graft is being installed


ANY_CONTEXT: Final = frozenset(Context)

# A graft-callable's function: the calling graft's transaction, then the guest's ints (at
# most four); an int back (or nothing, for a callable without a result).
TxnFn = (Callable[["Transaction"], int | None] | Callable[["Transaction", int], int | None]
         | Callable[["Transaction", int, int], int | None]
         | Callable[["Transaction", int, int, int], int | None]
         | Callable[["Transaction", int, int, int, int], int | None]
         | Callable[["Transaction", int, int, int, int, int], int | None])


@dataclass(frozen=True, slots=True)
class GraftCallable:
    """A host function grafts of a point may import from module ``"vino"``.

    ``fn(txn, *args)`` runs on the graft's thread inside its transaction;
    ``txn.calling_graft`` is the calling graft (its ``principal``, ``target``,
    ``memory``). An accessor records undo entries on ``txn``; it raises
    ``Forbidden`` for anything beyond the principal's rights, which aborts the
    graft with ``forbidden_call``.

    ``contexts``: where the callable is valid. A call from any other context
    (a callable that reads the invocation's inputs, called from ``vino_message``)
    aborts with ``forbidden_call`` before ``fn`` runs.
    """

    name: str
    params: tuple[str, ...]
    results: tuple[str, ...]
    fn: TxnFn
    contexts: frozenset[Context] = ANY_CONTEXT


def graft_callable(name: str, params: Iterable[str] = (), results: Iterable[str] = (I32,),
                   contexts: Iterable[Context] = ANY_CONTEXT,
                   ) -> Callable[[TxnFn], GraftCallable]:
    """Decorator: ``@graft_callable("vm_hint", (I32, I32))`` over ``def f(txn, vpn, imp)``.

    The function runs inside the calling graft's transaction (``txn``); to change
    host state it records the undo on ``txn`` (``txn.setitem``, ``txn.set``,
    ``txn.record``). It must validate its arguments: for bad ones it raises
    ``BadArgument`` (or ``Forbidden`` beyond the principal's rights), which aborts
    the graft. Anything else it raises is treated as the host's own bug (a host
    fault: the transaction aborts, the graft is kept, the exception reaches the
    caller of the point). Raises nothing itself.
    """

    def wrap(fn: TxnFn) -> GraftCallable:
        return GraftCallable(name, tuple(params), tuple(results), fn, frozenset(contexts))

    return wrap


def owner_or_privileged(principal: Principal, target: object) -> bool:
    """The default rule: a principal may graft a target it owns; ``GLOBAL``, only a
    privileged principal (which may graft any target).

    A target is owned by ``target.owner`` when that is the principal itself (or its
    name). A point whose targets say nothing of their owner must state its own rule
    (``may_install=``): with this one, only privileged principals can graft them.
    """
    if principal.privileged:
        return True
    if target is GLOBAL:
        return False
    owner = getattr(target, "owner", None)
    return owner is principal or (isinstance(owner, str) and owner == principal.name)


def any_principal(principal: Principal, target: object) -> bool:
    """A rule an application may state: any principal may graft any target but
    ``GLOBAL`` (which stays privileged). Replacing or removing another principal's
    graft is still refused."""
    return target is not GLOBAL or principal.privileged


LockResolver = Callable[["Transaction", int], "HostLock | None"]

# What a point does with a host fault (the host's own exception during a graft's call),
# after aborting the transaction and keeping the graft (invoke.py):
HOST_FAULTS_RAISE: Final = "raise"  # re-raise it to the caller (the default)
HOST_FAULTS_DEFAULT: Final = "default"  # log it with its traceback; the default answers


@dataclass(eq=False, kw_only=True)
class _PointBase(Generic[T, *Args]):
    name: str
    entry: str
    buffer_size: int
    encode: Callable[[memoryview, *Args], tuple[int, ...]]
    target_type: type[T] | tuple[type[T], ...]  # object: any kind of target
    params: tuple[str, ...] = ()
    result: str = I32
    callables: tuple[GraftCallable, ...] = ()
    may_install: Callable[[Principal, object], bool] = owner_or_privileged
    lock_resolver: LockResolver | None = None
    budget_s: float | None = None  # per-call CPU budget; None: the principal's quota
    host_faults: str = HOST_FAULTS_RAISE  # HOST_FAULTS_RAISE or HOST_FAULTS_DEFAULT
    layout: Layout | None = None  # the buffer's fields by name (needed by Python grafts)
    # Its grafts may use WebAssembly SIMD (128-bit vectors; relaxed SIMD stays off): for
    # points whose grafts transform whole blocks (ciphers, checksums). Elsewhere a module
    # using SIMD is refused at load, naming the feature (sandbox.refuse_simd).
    simd: bool = False
    # Why a target can no longer be grafted (a file closed, an address space released, an
    # inode freed), or None. Asked before anything else is done with an install, and again
    # at the switch under the registry's lock, so an install racing the target's end never
    # leaves a graft on it (the host marks the end before it calls remove_target).
    target_gone: Callable[[object], str | None] | None = None

    registry: Registry | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        if not 0 < self.buffer_size <= limits.MAX_BUFFER_BYTES:
            raise InvalidDeclaration(f"{self.name}: buffer_size {self.buffer_size} out of range")
        for t in (*self.params, self.result):
            if t not in (I32, I64):
                raise InvalidDeclaration(f"{self.name}: unsupported Wasm type {t!r}")
        if self.host_faults not in (HOST_FAULTS_RAISE, HOST_FAULTS_DEFAULT):
            raise InvalidDeclaration(f"{self.name}: host_faults must be {HOST_FAULTS_RAISE!r} or "
                                     f"{HOST_FAULTS_DEFAULT!r}, not {self.host_faults!r}")
        names = [c.name for c in self.callables]
        if len(set(names)) != len(names):
            raise InvalidDeclaration(f"{self.name}: duplicate graft-callable names")

    @property
    def kind(self) -> str:
        raise NotImplementedError

    def target_problem(self, target: object) -> str | None:
        """Why ``target`` is not a target of this point (None: it is one)."""
        if target is GLOBAL or isinstance(target, self.target_type):
            return None
        kinds = self.target_type if isinstance(self.target_type, tuple) else (self.target_type,)
        return (f"{describe_target(target)} is not a target of {self.name}: it takes "
                f"{' or '.join(k.__name__ for k in kinds)} (or GLOBAL), not "
                f"{type(target).__name__}")


def _dispatch(point: ErasedFunctionPoint, target: object, *args: object) -> object:
    """Run the policy for ``target``: its graft, else the global graft, else the default.

    Raises only the host's own exceptions (see ``FunctionPoint``'s docstring).
    """
    table = point.table
    g = table.get(target) if table else None
    if g is None:
        if not table:
            return point.default(*args)
        g = table.get(GLOBAL)
        if g is None:
            return point.default(*args)
    return g.call(args)


# FunctionPoint.__call__: the native twin of _dispatch when the fast path is built (and
# the protected call is native: not with VINO_FASTPATH=crossings), else _dispatch.
_NATIVE: Final = fastpath.protected(fastpath.PART.get())
_DISPATCH: Final = (_NATIVE.Dispatch(GLOBAL, _dispatch.__doc__, "FunctionPoint.__call__")
                    if _NATIVE is not None else _dispatch)


@dataclass(eq=False, kw_only=True)
class FunctionPoint(_PointBase[T, *Args], Generic[T, *Args, R]):
    """A replaceable policy: at most one graft per target (plus one ``GLOBAL``).

    Declare it with keywords and ``Registry.declare`` it; then call it as
    ``point(target, *args)``: the target's graft, else the ``GLOBAL`` graft, else
    ``default(*args)``. ``FunctionPoint[T, *Args, R]`` takes targets of type ``T`` and
    arguments ``Args`` and answers ``R``. Fields:

    - ``name``, ``entry`` (the export a graft must have), ``buffer_size`` (bytes);
    - ``target_type``: the class (or tuple of classes) of its targets, ``object`` for any;
    - ``encode(buf, *args) -> tuple[int, ...]``: write the inputs into the graft's
      buffer, return the entry's Wasm arguments (usually ``()``);
    - ``decode(buf, ret, *args) -> R``: read and *validate* the answer; raise
      ``InvalidResult`` to reject it (the graft is aborted, the default runs).
      Required, although it has a default value in the signature;
    - ``default(*args) -> R``: the built-in policy. Required as well;
    - ``encode_result(buf, R, *args) -> int``: the inverse of ``decode``; with it,
      grafts may call ``default()`` and adjust its answer;
    - ``params`` / ``result``: the entry's Wasm types (default ``() -> i32``);
    - ``callables``: the point's own graft-callables; ``may_install``: the rights
      rule (default ``owner_or_privileged``); ``budget_s``: a per-call CPU budget
      overriding the principal's quota; ``lock_resolver``: lock ids to host locks;
      ``host_faults``: what a call does with the host's own exception met during a
      graft's call (after aborting its transaction and keeping the graft):
      ``"raise"`` it to the caller (the default), or log it and answer with the
      ``"default"`` (for hosts that must complete every operation); ``simd``: its
      grafts may use WebAssembly SIMD (off: refused at load).

    Declaring raises ``InvalidDeclaration`` for a missing ``decode``/``default``, a buffer
    size out of range, an unsupported type or duplicate callables. A call raises
    what the host's own code raises (``encode``, ``decode``, ``default``, a
    graft-callable's bug), never what the graft does: a graft's failure gives the
    default's answer.
    """

    decode: Callable[[memoryview, int, *Args], R] = field(default=None)  # type: ignore[assignment]
    encode_result: Callable[[memoryview, R, *Args], int] | None = None
    default: Callable[[*Args], R] = field(default=None)  # type: ignore[assignment]

    # The dispatch table. Invariant: values are live grafts of this point.
    table: dict[object, Graft] = field(default_factory=dict, init=False, repr=False)

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.decode is None or self.default is None:
            raise InvalidDeclaration(f"{self.name}: a function point needs decode and default")

    @property
    def kind(self) -> str:
        return "function"

    if TYPE_CHECKING:
        def __call__(self, target: T, *args: *Args) -> R:
            """Run the policy for ``target`` (``_dispatch``; raises what it says)."""
    else:
        __call__ = _DISPATCH

    def on_first(self, *, native: bool = True) -> Callable[[*Args], R]:
        """A subsystem's policy slot for this point when the target is the slot's first
        argument: ``slot(*args)`` is ``self(args[0], *args)``. Native (``fastpath.c``'s
        ``Targeted``) with the fast path (unless ``native`` is False): no Python frame
        between the subsystem and the dispatch."""
        call = type(self).__call__
        if native and _NATIVE is not None:
            slot: Callable[[*Args], R] = _NATIVE.Targeted(self, call)
            return slot
        return lambda target, *args: call(self, target, target, *args)  # type: ignore[call-arg]

    def on_first_in_place(self, into: int, seal: dict[int, S],
                          empty: Callable[[*Args], None], *, native: bool = True,
                          ) -> Callable[[*Args], None]:
        """A policy slot like ``on_first`` for a subsystem that transforms a buffer: the
        answer replaces argument ``into`` in place (``args[into][:] = answer``) and the
        slot answers None. With no graft installed at all (``table`` empty) it runs
        ``empty(*args)`` instead; before a call that the target's or the ``GLOBAL`` graft
        answers, it records the target in ``seal`` (``seal[id(target)] = target``: the
        filter's guard, ``kernel/points.py``). Native like ``on_first``."""
        call = type(self).__call__
        if native and _NATIVE is not None and call is _DISPATCH:
            native_slot: Callable[[*Args], None] = _NATIVE.Targeted(self, call, into, seal,
                                                                    empty)
            return native_slot

        def slot(target: object, *rest: object) -> None:
            args = (target, *rest)
            table = self.table
            if not table:
                return empty(*args)  # type: ignore[arg-type]
            if target in table or GLOBAL in table:
                seal[id(target)] = target  # type: ignore[assignment]
            args[into][:] = call(self, target, *args)  # type: ignore[arg-type,index]
            return None

        return slot  # type: ignore[return-value]

    def redispatch(self, stale: Graft, args: tuple[*Args]) -> R:
        """Dispatch again for a graft that was no longer live when its call began."""
        g = self.table.get(stale.target)
        if g is None and stale.target is not GLOBAL:
            g = self.table.get(GLOBAL)
        if g is None or g is stale:
            return self.default(*args)
        return g.call(args)  # type: ignore[return-value]  # decode and default give R

    def graft_for(self, target: object) -> Graft | None:
        return self.table.get(target) or self.table.get(GLOBAL)


@dataclass(eq=False, kw_only=True)
class EventPoint(_PointBase[T, *Args]):
    """An event: several handlers per target, each run in its own transaction.

    Declared like a ``FunctionPoint`` without ``decode``/``default`` (a handler's
    negative answer aborts it); call it as ``point(target, *args)``: an
    ``EventPoint[T, *Args]`` takes targets ``T`` and arguments ``Args``. Declaring
    raises ``InvalidDeclaration`` for a buffer size out of range or an unsupported type.
    """

    # Invariant: every list holds live grafts of this point, in install order.
    handlers: dict[object, list[Graft]] = field(default_factory=dict, init=False, repr=False)

    @property
    def kind(self) -> str:
        return "event"

    def __call__(self, target: T, *args: *Args) -> int:
        """Deliver the event to the target's handlers and the global ones.

        Returns how many handlers committed. A handler that aborts is dealt with
        like any graft failure; the others still run. Raises only the host's own
        exceptions (``encode``, a graft-callable's bug), after undoing that handler.
        """
        h = self.handlers
        if not h:
            return 0
        own = h.get(target, ())
        glob = h.get(GLOBAL, ()) if target is not GLOBAL else ()
        committed = 0
        for g in (*own, *glob):
            if g.invoke_event(args):
                committed += 1
        return committed


# A point as the registry and its grafts see it, whatever it is called with: they never
# call it, only its codecs, and only with the arguments its own ``__call__`` passed to the
# graft. (mypy relates a variadic class's arguments item by item, so every typed point is
# one of these, and no ``Any`` is needed to hold one.)
ErasedFunctionPoint = FunctionPoint[Never, *tuple[object, ...], object]
ErasedEventPoint = EventPoint[Never, *tuple[object, ...]]
Point = ErasedFunctionPoint | ErasedEventPoint

# Little-endian helpers shared by point declarations.
U32: Final = struct.Struct("<I")
U64: Final = struct.Struct("<Q")
