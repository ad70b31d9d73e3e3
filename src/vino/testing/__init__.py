"""Test infrastructure: fault injection, rigs, and the reliability campaigns.

What the tests of vino (and of a program that embeds it) use to prove the
guarantees of docs/SAFETY.md: make the Nth call at a site fail, run an operation on
a rig whose whole state is a value, and check that the state afterwards is exactly
the state before or exactly the committed result. ``vino reliability`` runs the
same campaigns at length and writes docs/RELIABILITY.md.

The modules, in the order a campaign uses them:

- ``faults``: ``Injector`` (the Nth call at a named site fails: one-shot,
  persistent or at a seeded rate) and ``StepClock`` (a kernel ``SimClock`` that
  moves on every read, so time-outs expire without waiting);
- ``world``: the generic test points (a pick point and an event point over a
  ``Host``: a dict and a list), on which the graft and red-team tests build;
- ``rig``: ``Rig`` (the campaigns' registry with test points whose accessors pass
  fault sites), the WAT building blocks, ``registry_problems``, ``scratch_kernel``
  and the kernel helpers;
- ``loops``: fault-injection loops on the rig (``fault_loop`` drives any loop);
- ``kernel_loops``: the same on a kernel: device errors, faults in kernel points;
- ``model``: nested transactions in lockstep with a model (``TxnModel``);
- ``soak``: many threads, grafts replaced under them (``soak``, ``kernel_soak``);
- ``threads``: ``run_threads``, work on threads whose failures fail the caller;
- ``fuzz``: mutated modules against the loader, hostile grafts at every point;
- ``rights``: who may install what, and what a graft may touch;
- ``report``: every campaign in order, and the Markdown report.

Only fault injection and the clock are fakes; everything else is the real code.
Each campaign returns plain figures and its ``problems`` (empty: nothing lost); the
tests assert on them, the report prints them.
"""

from vino.testing.faults import InjectedFault, Injector, Plan, StepClock
from vino.testing.rig import Rig, registry_problems, scratch_kernel

__all__ = [
    "InjectedFault",
    "Injector",
    "Plan",
    "Rig",
    "StepClock",
    "registry_problems",
    "scratch_kernel",
]
