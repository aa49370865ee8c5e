"""A spin barrier for kernels that run at the same time on several threads (a small Numba
extension: Numba has no atomics for CPU code).

Why: a mini-batch of 64 is ~40 µs of work, and its two halves (.epoch: each thread takes its
share of the first layer's units) must meet twice per batch. Going back to Python to meet would
cost more than the batch; an atomic counter in shared memory costs a cache-line transfer.

``sync`` is an int64 array shared by the threads, zero at the start. Barrier k (k = 1, 2, ...) is
met when ``wait_all(sync, k * parts)`` has been called by all ``parts`` threads: each adds one to
sync[0] (sequentially consistent, so everything the thread wrote before is visible to the others
once they see the count) and waits until the count reaches k * parts. Every thread must call every
barrier, in the same order; a thread that stops early leaves the others waiting for ever.
"""

from __future__ import annotations

import llvmlite.binding as llvm
from llvmlite import ir
from numba import njit, types
from numba.core import cgutils
from numba.extending import intrinsic

from fastnet.backends.numba.flags import INLINE, NJIT
from fastnet.backends.numba.vector import _item_pointer


@intrinsic
def _atomic_add(typingctx, arr, i, v):
    """arr[i] += v atomically (seq_cst); returns the old value. arr: int64 array."""
    def codegen(context, builder, sig, args):
        pointer = _item_pointer(context, builder, sig.args[0], args[0], args[1])
        value = context.cast(builder, args[2], sig.args[2], types.int64)
        return builder.atomic_rmw("add", pointer, value, "seq_cst")
    return types.int64(arr, i, v), codegen


@intrinsic
def _atomic_load(typingctx, arr, i):
    """arr[i], loaded atomically with acquire ordering (never cached in a register)."""
    def codegen(context, builder, sig, args):
        pointer = _item_pointer(context, builder, sig.args[0], args[0], args[1])
        return builder.load_atomic(pointer, "acquire", 8)
    return types.int64(arr, i), codegen


_X86 = llvm.get_process_triple().startswith(("x86_64", "i386", "i686"))


@intrinsic
def _spin_pause(typingctx):
    """x86's ``pause`` (a hint that this is a spin-wait loop: it yields the core's resources to a
    sibling hardware thread); nothing elsewhere."""
    def codegen(context, builder, sig, args):
        if _X86:
            pause = cgutils.get_or_insert_function(builder.module, ir.FunctionType(ir.VoidType(), []),
                                                   "llvm.x86.sse2.pause")
            builder.call(pause, [])
        return context.get_dummy_value()
    return types.none(), codegen


@njit(**NJIT, **INLINE)
def wait_all(sync, count):
    """Count this thread in at sync[0], then wait until sync[0] reaches ``count``."""
    _atomic_add(sync, 0, 1)
    while _atomic_load(sync, 0) < count:
        _spin_pause()
