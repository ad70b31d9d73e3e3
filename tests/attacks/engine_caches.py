"""What the engine attacks check beyond the harness's snapshot: the caches.

A module is remembered in three places once a graft of it was installed: the
sandbox's compiled modules, the registry's linked modules and the loader's passed
checks. A refused module must be remembered in none of them.
"""

from __future__ import annotations

import hashlib

from vino.graft import loader

from .harness import Tenancy


def cache_entries(t: Tenancy) -> tuple[int, int, int]:
    """Entries in the sandbox's compiled modules, the registry's linked modules and the
    loader's passed checks for ``atk.pick``."""
    passed = loader._PASSED.get(t.pick) or {}
    return len(t.registry.sandbox._modules), len(t.registry._pres), len(passed)


def cached(t: Tenancy, source: loader.Source) -> bool:
    """Whether the module of ``source`` is remembered in any cache of ``t``'s registry."""
    try:
        wasm = loader.read_source(source)[0]
    except ValueError:  # never became a module
        return False
    digest = hashlib.sha256(wasm).hexdigest()
    linked = any(d == digest for _, d in t.registry._pres)
    return linked or loader.cached(t.registry.sandbox, digest)
