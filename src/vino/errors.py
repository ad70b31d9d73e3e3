"""Every error vino raises, in one hierarchy.

``VinoError`` is the root: nothing vino's public API raises on its own account is
outside it. The errors of the mechanism are here; the kernel's (``kernel/errors.py``),
the SDK's (``BuildError``, ``ToolchainMissing``, ``CompileError``), SQLite's lock
``Busy``, its session's ``JournalModeRefused`` and its VFS's ``FilesStillOpen``, and
the test rigs' ``UndoFailed`` derive from it where they are raised.
Each docstring says when the error is raised and what was done about it, so a
caller knows what state it is left in.

Where a built-in exception means the same thing the error derives from it too
(``InvalidDeclaration`` is a ``ValueError``, ``EngineMismatch`` a ``RuntimeError``,
``TimedOut`` a ``TimeoutError``), so ordinary ``except`` clauses keep working.

Invariant: an error that blames a graft when raised inside its call names its
reason (``abort_reason``); one that does not (``None``) is the host's own fault.
The protected call reads the attribute (``aborts.classify``), never a type chain.
"""

from __future__ import annotations

from enum import StrEnum


class AbortReason(StrEnum):
    """Why a graft's transaction was aborted (docs/DESIGN.md §2)."""

    TRAP = "trap"  # the guest trapped: wild memory access, unreachable, stack overflow, ...
    TIMEOUT = "timeout"  # ran past its per-call CPU budget
    LOCK_TIMEOUT = "lock_timeout"  # held (or waited for) a lock past the lock time-out
    RESOURCE = "resource"  # went over a quota: memory, kalloc, handles, locks, log, CPU
    INVALID_RESULT = "invalid_result"  # the result failed the point's validator
    FORBIDDEN_CALL = "forbidden_call"  # called a graft-callable beyond its principal's rights
    # The host's own code raised inside a graft's transaction (encode, decode, the
    # default, a graft-callable's bug): a host fault, not the graft's. The transaction
    # aborts, the graft is kept and the exception reaches the caller.
    HOST_ERROR = "host_error"


class VinoError(Exception):
    """Root of every error vino raises.

    ``abort_reason``: the reason a graft's transaction is aborted with when this
    error stops it, blaming the graft; ``None``: raised inside a graft's call, it is
    the host's own fault (``host_error``: the graft is kept, the error reaches the
    caller). ``abort_detail()`` is the text the abort is recorded with.
    """

    abort_reason: AbortReason | None = None

    def abort_detail(self) -> str:
        return str(self)


class GraftRejected(VinoError):
    """An install was refused by a load-time check.

    Raised before any state changed: the registry, the principal's usage and any
    graft already installed are exactly as they were. ``graft``, ``point`` and
    ``reason`` say which module, where, and exactly why.
    """

    def __init__(self, graft: str, point: str, reason: str) -> None:
        self.graft = graft
        self.point = point
        self.reason = reason
        super().__init__(f"graft {graft!r} rejected at {point!r}: {reason}")


class GraftAborted(VinoError):
    """A graft's transaction was aborted.

    By the time this is seen every change the graft made through accessors has
    been undone, its locks released and its allocations freed. Graft points catch
    it internally and run the default; it reaches user code only from explicit
    calls such as ``Graft.send``.
    """

    def __init__(self, reason: AbortReason, detail: str, graft: str = "?") -> None:
        self.reason = self.abort_reason = reason
        self.detail = detail
        self.graft = graft
        super().__init__(f"graft {graft!r} aborted ({reason.value}): {detail}")

    def abort_detail(self) -> str:
        return self.detail


class CallRefused(VinoError):
    """A graft call was not made: no room for it on the calling thread.

    Either the thread's native stack has less left than a graft call needs (the
    Wasm stack allowance plus the host's reserve), or graft calls are already
    nested ``MAX_GRAFT_NESTING`` deep. Nothing ran; the point's default answered.
    The graft that was to be called is not at fault and is kept; if the call was
    made from inside another graft's call, that enclosing graft is doomed
    (``resource``) and removed per policy. Graft points catch this internally.
    """

    abort_reason = AbortReason.RESOURCE


class InvalidResult(VinoError):
    """Raised by a point's validator: the graft's answer is not acceptable.

    The transaction aborts with ``invalid_result`` and the default runs.
    """

    abort_reason = AbortReason.INVALID_RESULT


class QuotaExceeded(VinoError):
    """A principal went over one of its quotas; aborts with ``resource``."""

    abort_reason = AbortReason.RESOURCE


class Forbidden(VinoError):
    """A graft (or principal) asked for something beyond its rights.

    Inside a graft this aborts with ``forbidden_call``. At install time it is
    turned into ``GraftRejected``.
    """

    abort_reason = AbortReason.FORBIDDEN_CALL


class BadArgument(Forbidden):
    """A graft passed a graft-callable an argument it does not accept.

    Raised by a graft-callable that validates its arguments (a count out of
    range, an unknown id): the graft is at fault, so its transaction aborts with
    ``forbidden_call``, its effects are undone and the default runs, as for any
    graft failure. Any *other* exception a graft-callable raises is a bug of the
    host's own and is handled as a host fault (see ``Registry``): the
    transaction aborts, the graft is kept, and the exception reaches the caller.
    """


class MessageRefused(VinoError):
    """A graft answered a message with a negative value: it refused the message.

    Raised by ``Graft.send``. The message's transaction was aborted (anything the
    graft changed through accessors while reading it is undone); refusing is a
    graft's right, not a failure, so the graft stays installed and is not
    charged a failure. ``graft`` names it and ``answer`` is what it returned.
    """

    def __init__(self, graft: str, answer: int) -> None:
        self.graft = graft
        self.answer = answer
        super().__init__(f"graft {graft!r} refused the message (vino_message returned "
                         f"{answer}); it is still installed")


class LockTimeout(VinoError):
    """A thread waited longer than the lock time-out.

    A host thread sees this only if the holder is not a graft transaction (a
    graft holder is aborted instead and the waiter proceeds). A graft that waits
    too long is aborted with ``lock_timeout``.
    """

    abort_reason = AbortReason.LOCK_TIMEOUT


class WildPointer(VinoError):
    """A graft handed a graft-callable a pointer or length outside its own memory.

    Nothing was read or written; the graft is aborted with ``trap``, as if it had
    made the access itself.
    """

    abort_reason = AbortReason.TRAP

    def abort_detail(self) -> str:
        return f"wild pointer passed to a graft-callable: {self}"


class TimedOut(VinoError, TimeoutError):
    """A graft ran past its per-call CPU budget (or, while the host held a shared
    lock, its wall-time allowance) and was stopped there; aborts with ``timeout``.

    Raised inside the graft's call only: the point's default answered.
    """

    abort_reason = AbortReason.TIMEOUT


class AllowanceSpent(TimedOut):
    """A graft was stopped at an epoch tick because its principal's wall-time allowance
    for the current hold of a shared lock (``HOLD_GRAFT_WALL_S``) was spent, mostly by
    the principal's other grafts in that hold: its own calls there (this one and any
    earlier) spent less than theirs. Aborts with ``timeout``; the point's default
    answered. The graft is not at fault and is kept (``graft_at_fault=False``): a
    short call of a good graft meets a tick only when a loaded machine stretches it,
    and must not be removed for what another graft spent. The wait stays bounded
    either way."""


class Doomed(VinoError):
    """Raised inside a transaction that another thread has marked for abort."""

    def __init__(self, reason: AbortReason, detail: str) -> None:
        self.reason = self.abort_reason = reason
        self.detail = detail
        super().__init__(f"{reason.value}: {detail}")

    def abort_detail(self) -> str:
        return self.detail


class TransactionError(VinoError):
    """Misuse of the transaction API (commit of a finished transaction, ...)."""


class NoSuchGraft(VinoError):
    """The named graft is not installed (it may have been removed after an abort)."""


class InvalidDeclaration(VinoError, ValueError):
    """A point, layout, pool, rate or engine setting declared with something vino
    does not accept: a buffer size out of range, an unsupported Wasm type, duplicate
    names, a point declared twice, an unknown compiler.

    Raised where it is declared; nothing was registered or changed.
    """


class NoSuchPoint(VinoError, ValueError):
    """The registry has no graft point of that name, or that point object is not
    the one declared in it. Nothing changed."""


class MessageUndeliverable(VinoError, ValueError):
    """``Graft.send`` could not deliver: the graft exports no ``vino_message``, or
    the message is larger than its buffer. Nothing ran; nothing changed."""


class LockNotHeld(VinoError, RuntimeError):
    """A lock released by a thread that does not hold it (a host bug). Nothing was
    released."""


class EngineMismatch(VinoError, RuntimeError):
    """The installed wasmtime is not the one vino is pinned to, its private layout
    changed, or it refused what it never refuses for that version. vino refuses to
    run on it (``fastcall.check_internals``) rather than corrupt memory."""


class MalformedWasm(VinoError, ValueError):
    """Bytes that are not a WebAssembly module vino can read: a bad header, a
    truncated number, a section or name running past the end.

    Raised by the binary reader (``vino.graft.wasmbinary``) before anything is
    compiled; an install that meets it is rejected (``GraftRejected``) and a build
    fails. Nothing changed.
    """


class PythonGraftError(GraftRejected):
    """A Python graft uses something outside the subset ``vino.pygraft`` compiles.

    Raised at compile time, before any module exists: nothing was installed or
    changed (an install that meets it is rejected). ``filename``, ``line`` and
    ``col`` (1-based) locate the construct, ``problem`` says what is wrong and
    ``instead`` what to write.
    """

    def __init__(self, filename: str, line: int, col: int, problem: str, instead: str,
                 point: str = "?") -> None:
        self.filename = filename
        self.line = line
        self.col = col
        self.problem = problem
        self.instead = instead
        self.graft = filename
        self.point = point
        self.reason = f"{filename}:{line}:{col}: {problem}; {instead}"
        VinoError.__init__(self, self.reason)
