"""Users, processes and process groups: the kernel's principals.

Each ``User`` owns one ``vino.graft.Principal`` (its grafts act with its rights
and are charged to it). ``ROOT`` (uid 0) is privileged: it may graft global
points and reads/writes every file.

Rights (who may graft what), enforced at install by the graft points:
- a file's read-ahead: the user who opened it (an open file is its opener's), if
  that user may read the file;
- a file's filter: its owner;
- an address space or a process group: its owner;
- global points: root.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from vino.graft.accounting import Principal, Quota

_pids = itertools.count(1)
_pgids = itertools.count(1)


@dataclass(slots=True, eq=False)
class User:
    uid: int
    name: str
    principal: Principal = field(init=False)
    quota: Quota = field(default_factory=Quota)

    def __post_init__(self) -> None:
        self.principal = Principal(self.name, self.quota, privileged=self.uid == 0)

    @property
    def is_root(self) -> bool:
        return self.uid == 0


@dataclass(slots=True, eq=False)
class ProcessGroup:
    pgid: int
    owner: User
    name: str = ""
    # Set by Kernel.remove_group before it removes the group's grafts, never cleared: a
    # removed group takes no graft again (sched.pick's target_gone).
    removed: bool = False


@dataclass(slots=True, eq=False)
class Process:
    pid: int
    user: User
    name: str = ""
    group: ProcessGroup | None = None


def new_pid() -> int:
    return next(_pids)


def new_pgid() -> int:
    return next(_pgids)
