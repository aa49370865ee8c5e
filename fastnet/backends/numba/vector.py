"""SIMD vectors for Numba kernels (a small Numba extension): a value type held in a register, and
the few operations the layer kernels need.

Why: the first layer walks each sample's non-zero pixels and, per pixel, adds a row of weights
into the sample's unit sums. LLVM's loop vectoriser only vectorises long inner loops; for a row of
16 units it unrolls the loop into scalars instead. These intrinsics say "one vector" directly, so
the unit sums stay in vector registers across the pixel loop.

A ``Vec`` holds 256 bits of one float dtype, 8 float32 or 4 float64 lanes, or 512 bits (16 or 8)
where Numba compiles for AVX-512 (:data:`VECTOR_BITS`). On CPUs without AVX, LLVM splits each
operation into narrower ones: slower, never wrong. In the kernels a lane count is always
``lanes`` (never ``L``). Indices passed to ``at``, ``vload`` and ``vstore`` must be >= 0 and
in bounds: there is no wraparound and no bounds check.
"""

from __future__ import annotations

from llvmlite import ir
from numba import types
from numba.core import cgutils, config
from numba.core.codegen import get_host_cpu_features
from numba.extending import intrinsic, models, register_model


def _compiles_for_avx512():
    """Whether Numba compiles for AVX-512: the CPU features it gives LLVM ($NUMBA_CPU_FEATURES, else
    the host's) include it."""
    features = config.CPU_FEATURES if config.CPU_FEATURES is not None else get_host_cpu_features()
    return "+avx512f" in features.split(",")


# 512 bits where Numba compiles for AVX-512, else AVX2's 256, for both dtypes. On Intel AVX-512
# hosts, against 256 bits, whole steps in fresh processes alternated: float64 took 0.75x the time at
# 784-10-10 and 0.76x at 784-128-10 (README, *On the Intel host again*); float32, once its workers
# stayed on CPUs of their own (.cpus), 0.88x and 0.86x with one-vector passes (README, *On an Intel
# host: CPUs of their own*).
VECTOR_BITS = 512 if _compiles_for_avx512() else 256
# The vector registers the kernels may plan for: AVX-512's 32, AVX2's 16.
VECTOR_REGISTERS = 32 if VECTOR_BITS == 512 else 16


def lanes_of(bitwidth):
    """How many floats of this many bits one Vec holds: 8 float32 and 4 float64, or 16 and 8 on
    AVX-512."""
    return VECTOR_BITS // bitwidth


def dtype_lane_count(dtype):
    """How many values of a numpy float dtype one Vec holds (lanes_of)."""
    return lanes_of(8 * dtype.itemsize)


class Vec(types.Type):
    """A vector of one float dtype, lanes_of(its bits) lanes."""

    def __init__(self, dtype):
        self.dtype = dtype
        self.lanes = lanes_of(dtype.bitwidth)
        super().__init__(name=f"Vec({dtype} x {self.lanes})")


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm, fe_type):
        super().__init__(dmm, fe_type, ir.VectorType(dmm.lookup(fe_type.dtype).get_value_type(), fe_type.lanes))


def _item_pointer(context, builder, arrtype, arr, i):
    array = context.make_array(arrtype)(context, builder, arr)
    return cgutils.get_item_pointer(context, builder, arrtype, array, [i], wraparound=False, boundscheck=False)


def _convertible(arr, like):
    """Whether arr's values load into a Vec of like's dtype: unsigned integers, or that dtype."""
    return isinstance(arr.dtype, types.Integer) and not arr.dtype.signed or arr.dtype == like.dtype


def _load_converted(context, builder, arrtype, arr, i, count, dtype):
    """arr[i : i + count] as an LLVM vector of dtype (unsigned integers converted, floats as they
    are): one unaligned vector load."""
    element = context.get_value_type(arrtype.dtype)
    pointer = _item_pointer(context, builder, arrtype, arr, i)
    values = builder.load(builder.bitcast(pointer, ir.VectorType(element, count).as_pointer()), align=1)
    if isinstance(arrtype.dtype, types.Integer):
        values = builder.uitofp(values, ir.VectorType(context.get_value_type(dtype), count))
    return values


def _broadcast(builder, vtype, scalar):
    lane0 = builder.insert_element(ir.Constant(vtype, None), scalar, ir.Constant(ir.IntType(32), 0))
    zeros = ir.Constant(ir.VectorType(ir.IntType(32), vtype.count), [0] * vtype.count)
    return builder.shuffle_vector(lane0, ir.Constant(vtype, None), zeros)


@intrinsic
def lane_count(typingctx, arr):
    """How many of arr's elements one Vec holds (a compile-time constant)."""
    n = Vec(arr.dtype).lanes

    def codegen(context, builder, sig, args):
        return ir.Constant(ir.IntType(64), n)
    return types.int64(arr), codegen


@intrinsic
def at(typingctx, arr, i):
    """arr[i] for a 1-d array and 0 <= i < len(arr), without the negative-index wraparound code."""
    def codegen(context, builder, sig, args):
        return builder.load(_item_pointer(context, builder, sig.args[0], args[0], args[1]))
    return arr.dtype(arr, i), codegen


@intrinsic
def vzero(typingctx, arr):
    """A Vec of zeros of arr's dtype."""
    vec = Vec(arr.dtype)

    def codegen(context, builder, sig, args):
        return ir.Constant(context.get_value_type(vec), None)
    return vec(arr), codegen


@intrinsic
def vload(typingctx, arr, i):
    """arr[i : i + lanes] of a contiguous 1-d float array, as a Vec."""
    vec = Vec(arr.dtype)

    def codegen(context, builder, sig, args):
        pointer = _item_pointer(context, builder, sig.args[0], args[0], args[1])
        vtype = context.get_value_type(vec)
        return builder.load(builder.bitcast(pointer, vtype.as_pointer()), align=arr.dtype.bitwidth // 8)
    return vec(arr, i), codegen


@intrinsic
def vstore(typingctx, arr, i, v):
    """arr[i : i + lanes] = v."""
    def codegen(context, builder, sig, args):
        pointer = _item_pointer(context, builder, sig.args[0], args[0], args[1])
        vtype = context.get_value_type(sig.args[2])
        builder.store(args[2], builder.bitcast(pointer, vtype.as_pointer()), align=arr.dtype.bitwidth // 8)
        return context.get_dummy_value()
    return types.none(arr, i, v), codegen


@intrinsic
def vbroadcast(typingctx, arr, s):
    """A Vec of arr's dtype with every lane = s (converted to that dtype)."""
    vec = Vec(arr.dtype)

    def codegen(context, builder, sig, args):
        scalar = context.cast(builder, args[1], sig.args[1], vec.dtype)
        return _broadcast(builder, context.get_value_type(vec), scalar)
    return vec(arr, s), codegen


@intrinsic
def vload_as(typingctx, like, arr, i):
    """arr[i : i + lanes] converted to like's dtype: a whole Vec from unsigned integers (pixels)
    or floats of like's dtype. One load and one conversion for a vector of values."""
    vec = Vec(like.dtype)
    if not _convertible(arr, like):
        return None

    def codegen(context, builder, sig, args):
        return _load_converted(context, builder, sig.args[1], args[1], args[2], vec.lanes, vec.dtype)
    return vec(like, arr, i), codegen


@intrinsic
def vload4(typingctx, like, arr, i):
    """arr[i : i + 4] converted to like's dtype, in lanes 0-3 of a Vec (other lanes: copies of
    lane 0). arr holds unsigned integers (pixels) or floats of like's dtype. One vector load and
    conversion for four entries, instead of four scalar ones."""
    vec = Vec(like.dtype)
    if not _convertible(arr, like):
        return None

    def codegen(context, builder, sig, args):
        four = _load_converted(context, builder, sig.args[1], args[1], args[2], 4, vec.dtype)
        widen = ir.Constant(ir.VectorType(ir.IntType(32), vec.lanes), [0, 1, 2, 3] + [0] * (vec.lanes - 4))
        return builder.shuffle_vector(four, ir.Constant(four.type, None), widen)
    return vec(like, arr, i), codegen


@intrinsic
def vsplat(typingctx, v, lane):
    """A Vec with every lane = v[lane]; lane must be a literal integer below v's lane count."""
    if not isinstance(lane, types.IntegerLiteral) or not 0 <= lane.literal_value < getattr(v, "lanes", 0):
        return None
    j = lane.literal_value

    def codegen(context, builder, sig, args):
        n = sig.args[0].lanes
        return builder.shuffle_vector(args[0], ir.Constant(args[0].type, None),
                                      ir.Constant(ir.VectorType(ir.IntType(32), n), [j] * n))
    return v(v, lane), codegen


@intrinsic
def vfma(typingctx, a, b, c):
    """a * b + c, lane by lane, fused (one rounding)."""
    def codegen(context, builder, sig, args):
        vtype = context.get_value_type(sig.return_type)
        name = f"llvm.fma.v{vtype.count}f{sig.return_type.dtype.bitwidth}"
        fma = cgutils.get_or_insert_function(builder.module, ir.FunctionType(vtype, [vtype] * 3), name)
        return builder.call(fma, list(args))
    return a(a, b, c), codegen


@intrinsic
def vadd(typingctx, a, b):
    """a + b, lane by lane."""
    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], args[1])
    return a(a, b), codegen


def _transpose(builder, rows):
    """The transpose of a square tile held as a list of LLVM vectors (row i = rows[i]): one stage
    per bit d of the lane index, swapping that bit between row and column index within each pair
    of rows i, i + d (i without bit d)."""
    n = len(rows)
    rows = list(rows)
    d = 1
    while d < n:
        mask = lambda values: ir.Constant(ir.VectorType(ir.IntType(32), n), values)  # noqa: E731
        low = mask([n + p - d if p & d else p for p in range(n)])  # lanes of (rows[i], rows[i + d]) joined
        high = mask([n + p if p & d else p + d for p in range(n)])
        for i in range(n):
            if not i & d:
                rows[i], rows[i + d] = (builder.shuffle_vector(rows[i], rows[i + d], low),
                                        builder.shuffle_vector(rows[i], rows[i + d], high))
        d *= 2
    return rows


def _tile_pointers(context, builder, arrtype, arr, r, c, n):
    """Pointers to arr[r + i, c : c + n] as n-lane vectors, for i below n (a 2-d array)."""
    array = context.make_array(arrtype)(context, builder, arr)
    vtype = ir.VectorType(context.get_value_type(arrtype.dtype), n).as_pointer()
    return [builder.bitcast(cgutils.get_item_pointer(context, builder, arrtype, array, [builder.add(r, r.type(i)), c],
                                                     wraparound=False, boundscheck=False), vtype) for i in range(n)]


def _move_transposed(dst, src, extra, combine):
    """An intrinsic's typing and codegen for (dst, r, c, src, s, t, *extra): each row i of the
    transposed tile src[s + j, t + i] (i, j below lanes) becomes dst[r + i, c : c + lanes] =
    combine(context, builder, sig, args, row, old row); 2-d float arrays of one dtype, rows
    contiguous, every index in bounds."""
    if dst.dtype != src.dtype or dst.ndim != 2 or src.ndim != 2:
        return None
    n, align = Vec(dst.dtype).lanes, dst.dtype.bitwidth // 8

    def codegen(context, builder, sig, args):
        sources = _tile_pointers(context, builder, sig.args[3], args[3], args[4], args[5], n)
        tile = _transpose(builder, [builder.load(p, align=align) for p in sources])
        for p, row in zip(_tile_pointers(context, builder, sig.args[0], args[0], args[1], args[2], n), tile):
            builder.store(combine(context, builder, sig, args, row, lambda p=p: builder.load(p, align=align)), p,
                          align=align)
        return context.get_dummy_value()
    return types.none(dst, types.intp, types.intp, src, types.intp, types.intp, *extra), codegen


@intrinsic
def vadd_transposed(typingctx, dst, r, c, src, s, t):
    """dst[r + i, c + j] += src[s + j, t + i] for i, j below lanes: a square tile of src,
    transposed, added to one of dst (2-d float arrays of one dtype, rows contiguous). All indices
    in bounds. Loads, shuffles and stores of whole vectors: moved one value at a time, a tile of
    lanes x lanes values took as many scalar loads and stores."""
    return _move_transposed(dst, src, (), lambda context, builder, sig, args, row, old: builder.fadd(old(), row))


@intrinsic
def vstore_transposed(typingctx, dst, r, c, src, s, t, scale):
    """dst[r + i, c + j] = src[s + j, t + i] * scale for i, j below lanes: as vadd_transposed,
    scaled and stored."""
    def scaled(context, builder, sig, args, row, old):
        return builder.fmul(row, _broadcast(builder, row.type, context.cast(builder, args[6], sig.args[6], dst.dtype)))
    return _move_transposed(dst, src, (scale,), scaled)


def _halves_added(builder, x, y, m):
    """One stage of :func:`vsum_lanes`: x and y hold segments of m lanes, each a row's partial
    sums; the result holds x's segments then y's, each half as long, its two halves added."""
    n, h = x.type.count, m // 2
    first = [t * m + p for t in range(n // m) for p in range(h)]
    first += [n + lane for lane in first]  # y's lanes follow x's in a shuffle
    mask = lambda lanes: ir.Constant(ir.VectorType(ir.IntType(32), n), lanes)  # noqa: E731
    return builder.fadd(builder.shuffle_vector(x, y, mask(first)),
                        builder.shuffle_vector(x, y, mask([lane + h for lane in first])))


@intrinsic
def vsum_lanes(typingctx, arr, i):
    """A Vec whose lane j is the sum of the lanes of the vector arr[i + j * lanes : ...] (lanes
    consecutive vectors from i, of a contiguous 1-d float array), added as a tree: a transpose
    that adds its halves at every stage (lanes - 1 additions and twice as many shuffles for lanes
    sums, against lanes * (lanes - 1) scalar additions)."""
    vec = Vec(arr.dtype)

    def codegen(context, builder, sig, args):
        n, vtype = vec.lanes, context.get_value_type(vec)
        rows = []
        for k in range(n):
            pointer = _item_pointer(context, builder, sig.args[0], args[0], builder.add(args[1], args[1].type(k * n)))
            rows.append(builder.load(builder.bitcast(pointer, vtype.as_pointer()), align=arr.dtype.bitwidth // 8))
        m = n
        while len(rows) > 1:
            rows = [_halves_added(builder, rows[k], rows[k + 1], m) for k in range(0, len(rows), 2)]
            m //= 2
        return rows[0]
    return vec(arr, i), codegen


@intrinsic
def prefetch(typingctx, arr, i):
    """Start loading the cache line of arr[i] (any array, any index: a hint, never a fault).

    Why: mini-batches visit samples in random order, so a sample's entries are not where the
    hardware prefetcher looks; asking for the next sample's while this one is computed hides the
    memory latency that otherwise dominates.
    """
    def codegen(context, builder, sig, args):
        array = context.make_array(sig.args[0])(context, builder, args[0])
        pointer = builder.gep(array.data, [args[1]])
        byte_pointer = ir.IntType(8).as_pointer()
        fnty = ir.FunctionType(ir.VoidType(), [byte_pointer, ir.IntType(32), ir.IntType(32), ir.IntType(32)])
        fn = cgutils.get_or_insert_function(builder.module, fnty, "llvm.prefetch.p0")
        i32 = ir.IntType(32)
        builder.call(fn, [builder.bitcast(pointer, byte_pointer), i32(0), i32(3), i32(1)])  # read, keep, data
        return context.get_dummy_value()
    return types.none(arr, i), codegen
