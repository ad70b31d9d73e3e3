"""The graft SDK: ``vino.h`` for C grafts, the build command, and sample grafts.

``vino.sdk.build.build(source)`` compiles a C graft to WebAssembly; the samples
in ``samples/`` are shipped as C with their built ``.wasm`` beside them, and a
test proves each ``.wasm`` rebuilds byte-identically from its source.
"""
