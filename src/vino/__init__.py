"""vino: safe, transactional extensibility for Python.

Layers (arrows point down only):
- ``vino.graft``  — the graft mechanism: points, loader, sandbox, transactions, locks.
- ``vino.kernel`` — a reference operating-system model whose policies are graft points.
- ``vino.sdk``, ``vino.bench``, ``vino.cli`` — tools.
"""

__version__ = "0.1.0"
