"""Fused compiled kernels for the invariants (4.1), the losses (4.5) and the agent forces (4.6).

One pass per sink agent k computes, for every source species a and weight function m of k's species,

    phi[k, a, m]  = sum_i w_m(r_ki) S(r_ki)
    dphi[k, a, m] = sum_i d/dr [w_m S](r_ki) (q_k - q_i) / r_ki

and contracts them at once with the loss of k's species: H_k = A.phi + 1/2 phi.B phi and
F_k = -(A + B phi).dphi.  Nothing of size (N, N) is ever stored.  The candidate sources i come either
from all atoms (minimum image, the paper's sums; S = 1: :func:`_sinks_all`) or from a
:class:`~environment.neighbors.NeighborList` (smooth cutoff S of :mod:`agents.cutoff`: :func:`_sinks_cut`, which
first drops the listed pairs beyond r_c, a third of the list at the default skin).

The kernels are numba-compiled (``cache=True``: ~9 s the first time on a machine, then loaded in
~0.5 s; compiled or loaded, they give the same bits: see ``_SINKS_LOADED``), run in parallel over
chunks of sinks (each sink on one thread, so the results do not depend on the number of threads), and are
written so that their pair loops vectorize (SIMD): exp() is a branch-free polynomial (:func:`_exp`, ~1 ulp) and
1/r a bit-level guess and Newton steps (:func:`_inv_sqrt`, ~1 ulp; the square root and division it replaces are
not pipelined and took a fifth of the time).  Per pair and function the all-pairs loops read only r or 1/r and the
displacement: w' / r = slope w f(r) with f = 1/r, 1 or 1/r^2 by family, the slope applied once per sum.  Weight
functions that are integer powers of another (exp(-r/2) = exp(-r/4)^2, gauss(s=2) = gauss(s=4)^4) reuse its exp().
Results agree with the numpy reference to ~1e-15 relative (summation order differs).  Entry points:

- :class:`LossForces`: built once from :class:`~agents.loss.AgentLosses` and the atoms' symbols;
  ``H, G = LossForces(...)(positions)`` -- what :class:`environment.forces.ForceEvaluator` calls
  every step;
- :func:`invariants`: the kernel's phi and dphi of one :class:`~agents.invariants.InvariantSet`
  (the same numbers as ``InvariantSet.compute``; the tests compare them).
"""

from __future__ import annotations

import numpy as np

import numba
from llvmlite import ir as llvm_ir
from numba import njit, prange, types
from numba.extending import intrinsic

from agents.cutoff import as_cutoff
from agents.geometry import fold
from agents.weights import Exponential, Gaussian, PowerLaw
from environment.fused import adapter_call
from environment.neighbors import DEFAULT_SKIN, NeighborList

EXP, GAUSS, POW_INT, POW, EXP_POWER, GAUSS_POWER = 0, 1, 2, 3, 4, 5

_LOG2E = 1.4426950408889634
_LN2_HI = 0.693147180369123816490  # high bits of ln 2 (exact products with small integers)
_LN2_LO = 1.90821492927058770002e-10
_FLAGS = {"nsz", "contract", "reassoc", "arcp"}  # no 'nnan'/'ninf'/'afn': exp() stays accurate
#: r^2 (angstrom^2) given to a sink's own place among its all-pairs sources: the exponential weights underflow there
#: (exp(-c r) = exp(-700) at the kernels' clamp), so the self term needs no mask in their loops.
_FAR2 = 1e300


def encode_functions(functions):
    """Kinds (M,) int64 and parameters (M,) float64 of weight functions, for the kernels.

    exp(a): kind EXP, alpha; gauss(s): kind GAUSS, 1 / (2 s^2); pow(n): POW_INT with integer n, else POW.
    """
    kinds = np.empty(len(functions), dtype=np.int64)
    params = np.empty(len(functions))
    for m, f in enumerate(functions):
        if isinstance(f, Exponential):
            kinds[m], params[m] = EXP, f.alpha
        elif isinstance(f, Gaussian):
            kinds[m], params[m] = GAUSS, 0.5 / f.sigma**2
        elif isinstance(f, PowerLaw):
            kinds[m], params[m] = (POW_INT if float(f.n).is_integer() and f.n <= 64 else POW), f.n
        else:
            raise ValueError(f"no kernel for weight function {f!r}")
    return kinds, params


def plan_powers(kinds, params):
    """Share exponentials: w_m = w_b^n (n = 2, 3, 4) when c_m = n c_b in the same family.

    exp(-r/2) = exp(-r/4)^2 and gauss(s=2) = gauss(s=4)^4 cost a few multiplications instead of an
    exp().  Returns the new kinds (EXP_POWER / GAUSS_POWER for derived functions), ``base`` (M,)
    (index b, or -1) and ``power`` (M,), and the evaluation ``order`` (bases first).
    """
    kinds = kinds.copy()
    base = np.full(len(kinds), -1, dtype=np.int64)
    power = np.ones(len(kinds), dtype=np.int64)
    for family, derived in ((EXP, EXP_POWER), (GAUSS, GAUSS_POWER)):
        members = sorted((params[m], m) for m in range(len(kinds)) if kinds[m] == family)
        bases = []
        for c, m in members:
            for cb, b in bases:
                n = round(c / cb)
                if n in (2, 3, 4) and abs(c / cb - n) < 1e-12 * n:
                    kinds[m], base[m], power[m] = derived, b, n
                    break
            else:
                bases.append((c, m))
    order = np.concatenate([np.flatnonzero(base < 0), np.flatnonzero(base >= 0)]).astype(np.int64)
    return kinds, base, power, order


@intrinsic
def _bits_to_float(typingctx, bits):
    """Reinterpret an int64 as a float64 (an LLVM bitcast; vectorizes)."""
    sig = types.float64(types.int64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.DoubleType())

    return sig, codegen

@intrinsic
def _float_to_bits(typingctx, x):
    """Reinterpret a float64 as an int64 (an LLVM bitcast; vectorizes)."""
    sig = types.int64(types.float64)

    def codegen(context, builder, signature, args):
        return builder.bitcast(args[0], llvm_ir.IntType(64))

    return sig, codegen

#: exp(r) on |r| <= ln(2) / 2: the Chebyshev fit of degree 10 (computed at 40 digits with mpmath.chebyfit, then
#: rounded), highest degree first.  Its error, 2e-16 relative, is below the rounding of the Horner sum; Taylor's
#: series needs degree 13 for that (three more multiply-adds per exp()).
_EXP_POLY = (2.7626357241447223e-07, 2.764018079620985e-06, 2.4801504346997686e-05, 0.00019841170270440067,
             0.0013888888932488599, 0.008333333385667782, 0.04166666666657314, 0.16666666666554406,
             0.5000000000000006, 1.0000000000000067, 1.0)
_E10, _E9, _E8, _E7, _E6, _E5, _E4, _E3, _E2, _E1, _E0 = _EXP_POLY

@njit(cache=True, fastmath={"contract", "nsz"}, error_model="numpy")
def _exp(x):
    """exp(x) for x <= 0 (x below -700 is clamped), branch-free so that loops vectorize; ~1 ulp."""
    v = max(x, -700.0)
    nf = np.floor(v * _LOG2E + 0.5)
    r = (v - nf * _LN2_HI) - nf * _LN2_LO
    p = _E10 * r + _E9
    p = p * r + _E8
    p = p * r + _E7
    p = p * r + _E6
    p = p * r + _E5
    p = p * r + _E4
    p = p * r + _E3
    p = p * r + _E2
    p = p * r + _E1
    p = p * r + _E0
    return p * _bits_to_float((np.int64(nf) + 1023) << 52)

@njit(cache=True, fastmath={"contract", "nsz"}, error_model="numpy")
def _inv_sqrt(x):
    """1 / sqrt(x) for normal x > 0, branch-free so that loops vectorize; ~1 ulp.  The bit-level first guess
    (relative error < 3.5e-3) and four Newton steps (error squared each time) take a third of the time of the
    square root and division they replace (``vsqrtpd`` and ``vdivpd`` are not pipelined)."""
    y = _bits_to_float(np.int64(0x5FE6EB50C7B537A9) - (_float_to_bits(x) >> 1))
    h = 0.5 * x
    y = y * (1.5 - h * y * y)
    y = y * (1.5 - h * y * y)
    y = y * (1.5 - h * y * y)
    return y * (1.5 - h * y * y)

@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def fast_exp(x):
    """The kernels' vectorized exp of a 1-d array of non-positive numbers (for tests)."""
    out = np.empty(x.size)
    for j in range(x.size):
        out[j] = _exp(x[j])
    return out

@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def fast_inv_sqrt(x):
    """The kernels' vectorized 1 / sqrt of a 1-d array of positive numbers (for tests)."""
    out = np.empty(x.size)
    for j in range(x.size):
        out[j] = _inv_sqrt(x[j])
    return out

@njit(cache=True, error_model="numpy")
def _finish(k, t, phi_loc, dphi_loc, coef, A, B, quadratic, contract, store, H, F, phi_out, dphi_out):
    """Sink k of type t, its phi and dphi summed: store them, and/or H_k = A.phi + 1/2 phi.B phi (4.5) and
    F_k = -(A + B phi).dphi (4.6).  Strict IEEE arithmetic (no fast-math): its few sums need no vectors, and so
    every copy of its machine code rounds alike (see ``_SINKS_LOADED``).  Not inlined: inlined into the sink
    loops it made LLVM compile their pair loops to code 15 % slower."""
    P = phi_loc.size
    if store:
        for p in range(P):
            phi_out[k, p] = phi_loc[p]
            for x in range(3):
                dphi_out[k, p, x] = dphi_loc[p, x]
    if contract:
        h = 0.0
        for p in range(P):
            c = A[t, p]
            if quadratic[t]:
                b = 0.0
                for q in range(P):
                    b += B[t, p, q] * phi_loc[q]
                h += (c + 0.5 * b) * phi_loc[p]
                c += b
            else:
                h += c * phi_loc[p]
            coef[p] = c
        fx = 0.0
        fy = 0.0
        fz = 0.0
        for p in range(P):
            fx -= coef[p] * dphi_loc[p, 0]
            fy -= coef[p] * dphi_loc[p, 1]
            fz -= coef[p] * dphi_loc[p, 2]
        H[k] = h
        F[k, 0] = fx
        F[k, 1] = fy
        F[k, 2] = fz


@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _sinks_all(k0, k1, X, Y, Z, SX, SY, SZ, rank, box, sink_type, ptr, n_species, max_block, kinds, params, slope,
               base, power, order, n_functions, A, B, quadratic, contract, store, H, F, phi_out, dphi_out):
    """Sinks k0 <= k < k1 by all-pairs minimum-image sums (S = 1): H, F and, if ``store``, phi and dphi.

    With no switch, phi_m = sum_i w_m and dphi_m = slope_m sum_i w_m f(r) (q_k - q_i), f = 1/r (exp), 1 (gauss),
    1/r^2 (power law): each function's loop reads r (or 1/r) and the displacement only.
    """
    M = kinds.shape[1]
    P = n_species * M
    inv_box = 1.0 / box
    # per-pair buffers of one (sink, source species) block, and w_m of its pairs (bases of shared exponentials)
    geo = np.empty((5 + M, max_block))
    dx = geo[0]
    dy = geo[1]
    dz = geo[2]
    rr = geo[3]  # r
    ir = geo[4]  # 1 / r
    W = geo[5:]
    phi_loc = np.empty(P)
    dphi_loc = np.empty((P, 3))
    coef = np.empty(P)
    for k in range(k0, k1):
        t = sink_type[k]
        if t < 0:
            continue
        phi_loc[:] = 0.0  # entries of functions a species lacks (rows padded to M) stay 0
        dphi_loc[:] = 0.0
        ks = rank[k]
        xk = X[k]
        yk = Y[k]
        zk = Z[k]
        for a in range(n_species):
            q0 = ptr[0, a]
            n = ptr[0, a + 1] - q0
            # sources contiguous (sorted by species); k itself sits at q = ks.  Slices: indices jj >= 0 need no
            # negative-index wraparound, so the loop vectorizes
            sx = SX[q0:q0 + n]
            sy = SY[q0:q0 + n]
            sz = SZ[q0:q0 + n]
            own_jj = ks - q0  # k's own place in this block (outside it when k is another species)
            for jj in range(n):
                ux = fold(xk - sx[jj], box, inv_box)
                uy = fold(yk - sy[jj], box, inv_box)
                uz = fold(zk - sz[jj], box, inv_box)
                r2 = ux * ux + uy * uy + uz * uz
                # k itself: far away, so that its exponentials underflow (its r^-n is set to 0 below); u = 0 anyway
                r2 = _FAR2 if jj == own_jj else r2
                inv = _inv_sqrt(r2)
                dx[jj] = ux
                dy[jj] = uy
                dz[jj] = uz
                rr[jj] = r2 * inv
                ir[jj] = inv
            for i_m in range(n_functions[t]):
                m = order[t, i_m]
                kind = kinds[t, m]
                c = params[t, m]
                s0 = 0.0
                s1 = 0.0
                s2 = 0.0
                s3 = 0.0
                if kind == EXP:
                    for jj in range(n):
                        w = _exp(-c * rr[jj])
                        W[m, jj] = w
                        g = w * ir[jj]
                        s0 += w
                        s1 += g * dx[jj]
                        s2 += g * dy[jj]
                        s3 += g * dz[jj]
                elif kind == GAUSS:
                    for jj in range(n):
                        w = _exp(-c * rr[jj] * rr[jj])
                        W[m, jj] = w
                        s0 += w
                        s1 += w * dx[jj]
                        s2 += w * dy[jj]
                        s3 += w * dz[jj]
                elif kind == EXP_POWER or kind == GAUSS_POWER:
                    e = power[t, m]
                    b = base[t, m]
                    gauss = kind == GAUSS_POWER
                    for jj in range(n):
                        w = _power_of(W[b, jj], e)
                        W[m, jj] = w
                        g = w if gauss else w * ir[jj]
                        s0 += w
                        s1 += g * dx[jj]
                        s2 += g * dy[jj]
                        s3 += g * dz[jj]
                else:
                    _power_law(kind, c, n, rr, ir, W[m])
                    if 0 <= own_jj < n:  # r^-n of the stand-in distance is small, not zero, for a small n
                        W[m, own_jj] = 0.0
                    for jj in range(n):
                        w = W[m, jj]
                        g = w * ir[jj] * ir[jj]
                        s0 += w
                        s1 += g * dx[jj]
                        s2 += g * dy[jj]
                        s3 += g * dz[jj]
                p = a * M + m
                sl = slope[t, m]
                phi_loc[p] = s0
                dphi_loc[p, 0] = sl * s1
                dphi_loc[p, 1] = sl * s2
                dphi_loc[p, 2] = sl * s3
        _finish(k, t, phi_loc, dphi_loc, coef, A, B, quadratic, contract, store, H, F, phi_out, dphi_out)


@njit(cache=True, fastmath=_FLAGS, error_model="numpy", inline="always")
def _power_of(v, e):
    """v^e for e = 2, 3, 4 (a weight function that is a power of another, :func:`plan_powers`), branch-free."""
    v2 = v * v
    return v2 if e == 2 else (v2 * v if e == 3 else v2 * v2)


@njit(cache=True, fastmath=_FLAGS, error_model="numpy", inline="always")
def _power_law(kind, c, n, rr, ir, w):
    """w[:n] = r^-c: by multiplications for an integer c (POW_INT), else by pow()."""
    if kind == POW_INT:
        for jj in range(n):
            w[jj] = 1.0
        for _ in range(int(c)):
            for jj in range(n):
                w[jj] *= ir[jj]
    else:
        for jj in range(n):
            w[jj] = rr[jj] ** (-c)


@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _sinks_cut(k0, k1, sink_order, X, Y, Z, SX, SY, SZ, box, sink_type, idx, ptr, n_species, max_block, r_c, r_on,
               kinds, params, slope, base, power, order, n_functions, A, B, quadratic, contract, store, H, F,
               phi_out, dphi_out):
    """Sinks sink_order[k0:k1] by smoothly cut sums over a neighbour list: H, F and, if ``store``, phi and dphi.

    phi_m = sum_i w_m S and dphi_m = sum_i (w_m' S + w_m S') (q_k - q_i) / r = sum_i w_m (S' / r + slope_m S f)
    (q_k - q_i), f = 1/r (exp), 1 (gauss), 1/r^2 (power law), over the listed neighbours within r_c.
    """
    M = kinds.shape[1]
    P = n_species * M
    inv_box = 1.0 / box
    # per-pair buffers of one (sink, source species) block, and w_m of its pairs (bases of shared exponentials)
    geo = np.empty((8 + M, max_block))
    dx = geo[0]
    dy = geo[1]
    dz = geo[2]
    rr = geo[3]  # r
    ir = geo[4]  # 1 / r
    sb = geo[5]  # S
    sri = geo[6]  # S / r
    sd = geo[7]  # S' / r
    W = geo[8:]
    phi_loc = np.empty(P)
    dphi_loc = np.empty((P, 3))
    coef = np.empty(P)
    r_c2 = r_c * r_c
    inv_w = 1.0 / (r_c - r_on)
    for kk in range(k0, k1):
        k = sink_order[kk]
        t = sink_type[k]
        if t < 0:
            continue
        phi_loc[:] = 0.0  # entries of functions a species lacks (rows padded to M) stay 0
        dphi_loc[:] = 0.0
        xk = X[k]
        yk = Y[k]
        zk = Z[k]
        for a in range(n_species):
            q0 = ptr[kk, a]
            listed = ptr[kk, a + 1] - q0
            # gathered sources, never k itself; only those within r_c are kept
            ids = idx[q0:q0 + listed]
            n = 0
            for jj in range(listed):  # branch-free compaction: every candidate is written, the count moves on if kept
                j = ids[jj]
                ux = fold(xk - SX[j], box, inv_box)
                uy = fold(yk - SY[j], box, inv_box)
                uz = fold(zk - SZ[j], box, inv_box)
                r2 = ux * ux + uy * uy + uz * uz
                dx[n] = ux
                dy[n] = uy
                dz[n] = uz
                rr[n] = r2
                n += r2 < r_c2
            for jj in range(n):
                inv = _inv_sqrt(rr[jj])
                r = rr[jj] * inv
                x = min(max((r - r_on) * inv_w, 0.0), 1.0)
                sw = 1.0 - x * x * x * (10.0 - 15.0 * x + 6.0 * x * x)
                rr[jj] = r
                ir[jj] = inv
                sb[jj] = sw
                sri[jj] = sw * inv
                sd[jj] = -30.0 * x * x * (1.0 - x) * (1.0 - x) * inv_w * inv
            for i_m in range(n_functions[t]):
                m = order[t, i_m]
                kind = kinds[t, m]
                c = params[t, m]
                sl = slope[t, m]
                s0 = 0.0
                s1 = 0.0
                s2 = 0.0
                s3 = 0.0
                if kind == EXP:
                    for jj in range(n):
                        w = _exp(-c * rr[jj])
                        W[m, jj] = w
                        g = w * (sd[jj] + sl * sri[jj])
                        s0 += w * sb[jj]
                        s1 += g * dx[jj]
                        s2 += g * dy[jj]
                        s3 += g * dz[jj]
                elif kind == GAUSS:
                    for jj in range(n):
                        w = _exp(-c * rr[jj] * rr[jj])
                        W[m, jj] = w
                        g = w * (sd[jj] + sl * sb[jj])
                        s0 += w * sb[jj]
                        s1 += g * dx[jj]
                        s2 += g * dy[jj]
                        s3 += g * dz[jj]
                elif kind == EXP_POWER or kind == GAUSS_POWER:
                    e = power[t, m]
                    b = base[t, m]
                    gauss = kind == GAUSS_POWER
                    for jj in range(n):
                        w = _power_of(W[b, jj], e)
                        W[m, jj] = w
                        g = w * (sd[jj] + sl * (sb[jj] if gauss else sri[jj]))
                        s0 += w * sb[jj]
                        s1 += g * dx[jj]
                        s2 += g * dy[jj]
                        s3 += g * dz[jj]
                else:
                    _power_law(kind, c, n, rr, ir, W[m])
                    for jj in range(n):
                        w = W[m, jj]
                        g = w * (sd[jj] + sl * sri[jj] * ir[jj])
                        s0 += w * sb[jj]
                        s1 += g * dx[jj]
                        s2 += g * dy[jj]
                        s3 += g * dz[jj]
                p = a * M + m
                phi_loc[p] = s0
                dphi_loc[p, 0] = s1
                dphi_loc[p, 1] = s2
                dphi_loc[p, 2] = s3
        _finish(k, t, phi_loc, dphi_loc, coef, A, B, quadratic, contract, store, H, F, phi_out, dphi_out)


@njit(cache=True, parallel=True)
def _kernel(X, Y, Z, SX, SY, SZ, rank, box, sink_type, idx, ptr, allpairs, n_species, max_block, r_c, r_on,
            kinds, params, slope, base, power, order, n_functions, A, B, quadratic, contract, store, H, F,
            phi_out, dphi_out, n_chunks, sink_order):
    """All sinks (sink_type >= 0): H (N,), F (N, 3) and, if ``store``, phi (N, P), dphi (N, P, 3)."""
    N = X.size
    for chunk in prange(n_chunks):
        k0 = chunk * N // n_chunks
        k1 = (chunk + 1) * N // n_chunks
        if allpairs:
            _sinks_all(k0, k1, X, Y, Z, SX, SY, SZ, rank, box, sink_type, ptr, n_species, max_block, kinds, params,
                       slope, base, power, order, n_functions, A, B, quadratic, contract, store, H, F, phi_out,
                       dphi_out)
        else:
            _sinks_cut(k0, k1, sink_order, X, Y, Z, SX, SY, SZ, box, sink_type, idx, ptr, n_species, max_block, r_c,
                       r_on, kinds, params, slope, base, power, order, n_functions, A, B, quadratic, contract, store,
                       H, F, phi_out, dphi_out)


#: Non-empty once the stand-alone :func:`_sinks_all` and :func:`_sinks_cut` have been loaded in this process (before
#: any :func:`_kernel`).
#:
#: Why: they are compiled with ``reassoc`` (so its sums vectorize), which lets LLVM choose the order of
#: the additions.  Numba keeps two machine-code copies of it: its own library, and the copy linked into
#: ``_kernel``'s library and optimized again there; the two round differently (about 1e-12 relative).  A
#: ``_kernel`` compiled in this process calls the stand-alone copy (the JIT resolves the symbol to the
#: first definition it loaded), but a ``_kernel`` loaded from numba's cache used its own copy: the same
#: run gave other numbers on its first (compiling) and later (cache-loading) runs.  Loading them
#: first makes every process call the stand-alone copy, cold cache or warm (tests/test_long_runs.py).
_SINKS_LOADED: list = []


def _all_pairs(species, n_species):
    """Index array and (1, S+1) pointers listing every atom grouped by source species."""
    order = np.argsort(species, kind="stable").astype(np.int32)
    counts = np.bincount(species, minlength=n_species)
    ptr = np.zeros((1, n_species + 1), dtype=np.int64)
    ptr[0, 1:] = np.cumsum(counts)
    return order, ptr, int(counts.max())


def _plan(kinds, params, n_functions):
    """What the kernel evaluates, per sink type (rows padded to M): ``(kinds, params, slope, base, power, order)``:
    :func:`plan_powers`' kinds, bases, powers and order, and each function's w'(r) / r = slope w f(r): slope -alpha
    with f = 1/r (exp), -2 c with f = 1 (gauss), -n with f = 1/r^2 (power law)."""
    T, M = kinds.shape
    base = np.full((T, M), -1, dtype=np.int64)
    power = np.ones((T, M), dtype=np.int64)
    order = np.tile(np.arange(M, dtype=np.int64), (T, 1))
    planned = kinds.copy()
    for t in range(T):
        m_t = int(n_functions[t])
        planned[t, :m_t], base[t, :m_t], power[t, :m_t], order[t, :m_t] = plan_powers(kinds[t, :m_t], params[t, :m_t])
    slope = np.where(kinds == GAUSS, -2.0 * params, -params)
    return planned, params, slope, base, power, order


def _source_layout(species, n_species, cutoff, neighbors):
    """How the kernel reads the sources: ``(idx, ptr, max_block, gather, rank, sink_order, allpairs, r_c, r_on)``.

    All pairs (``cutoff`` None): every atom, grouped by species (:func:`_all_pairs`); source coordinates are
    gathered in that order and ``rank`` is each atom's place in it.  Cutoff: the (up to date) neighbour
    list, in its sorted numbering, so that neighbours of consecutive sinks lie close in memory.
    """
    N = len(species)
    if cutoff is None:
        idx, ptr, max_block = _all_pairs(species, n_species)
        rank = np.empty(N, dtype=np.int64)
        rank[idx] = np.arange(N)
        return idx, ptr, max_block, idx, rank, np.arange(N, dtype=np.int64), True, 0.0, 0.0
    return (neighbors.indices, neighbors.pointers, neighbors.max_block, neighbors.order, np.zeros(N, dtype=np.int64),
            neighbors.order, False, cutoff.r_c, cutoff.r_on)


def _run(positions, box, species, n_species, sink_type, kinds, params, n_functions,
         A=None, B=None, quadratic=None, cutoff=None, neighbors=None, store=False, plan=None):
    """Shared driver of the kernel; returns H, F, phi (N, S*M), dphi (N, S*M, 3) (some unused)."""
    positions = np.asarray(positions, dtype=np.float64)
    box = float(box)
    N = len(positions)
    species = np.asarray(species, dtype=np.int64)
    cutoff = as_cutoff(cutoff)
    X, Y, Z = (np.ascontiguousarray(positions[:, x]) for x in range(3))
    if cutoff is not None:
        cutoff.check_box(box)
        if neighbors is None:
            neighbors = NeighborList(cutoff.r_c, skin=0.0)
        if neighbors.cutoff < cutoff.r_c:
            raise ValueError(f"the neighbour list's cutoff {neighbors.cutoff} is below r_c = {cutoff.r_c}")
        neighbors.update(positions, box, species, n_species)
    idx, ptr, max_block, gather, rank, sink_order, allpairs, r_c, r_on = _source_layout(species, n_species, cutoff,
                                                                                       neighbors)
    SX, SY, SZ = X[gather], Y[gather], Z[gather]
    M = kinds.shape[1]
    P = n_species * M
    contract = A is not None
    T = kinds.shape[0]
    if not contract:
        A = np.zeros((T, P))
        B = np.zeros((T, 1, 1))
        quadratic = np.zeros(T, dtype=np.bool_)
    H = np.zeros(N)
    F = np.zeros((N, 3))
    phi = np.zeros((N, P) if store else (1, P))
    dphi = np.zeros((N, P, 3) if store else (1, P, 3))
    plan = _plan(kinds, params, n_functions) if plan is None else plan
    if not _SINKS_LOADED:
        # Load the stand-alone sink loops into the JIT before _kernel (see _SINKS_LOADED): empty ranges of sinks,
        # their callees first
        kinds, params, slope, base, power, order = plan
        _finish(0, 0, np.zeros(0), np.zeros((0, 3)), np.zeros(0), A, B, quadratic, False, False, H, F, phi, dphi)
        _sinks_all(0, 0, X, Y, Z, SX, SY, SZ, rank, box, sink_type, ptr, n_species, max(max_block, 1), kinds, params,
                   slope, base, power, order, n_functions, A, B, quadratic, contract, store, H, F, phi, dphi)
        _sinks_cut(0, 0, sink_order, X, Y, Z, SX, SY, SZ, box, sink_type, idx, ptr, n_species, max(max_block, 1), r_c,
                   r_on, kinds, params, slope, base, power, order, n_functions, A, B, quadratic, contract, store, H, F,
                   phi, dphi)
        _SINKS_LOADED.append(True)
    _kernel(X, Y, Z, SX, SY, SZ, rank, box, sink_type, idx, ptr, allpairs, n_species, max(max_block, 1), r_c, r_on,
            *plan, n_functions, A, B, quadratic, contract, store, H, F, phi, dphi,
            max(1, min(N, 8 * numba.get_num_threads())), sink_order)
    return H, F, phi, dphi


def invariants(functions, positions, box, species, n_species, sinks=None, gradient=True,
               cutoff=None, neighbors=None):
    """phi (n_sinks, S, M) and dphi (n_sinks, S, M, 3) of eq. (4.1), as ``InvariantSet.compute``.

    Args:
        functions: the weight functions w_m.
        positions: (N, 3) angstrom.  box: cubic box side, angstrom.
        species: (N,) source-species index of every atom, in [0, n_species).
        sinks: indices of the sink agents (default all).
        cutoff: None (minimum image, all pairs) or r_c / :class:`SmoothCutoff` (needs r_c <= box / 2).
        neighbors: a :class:`~environment.neighbors.NeighborList` to reuse between calls (cutoff mode).
    """
    N = len(positions)
    kinds, params = encode_functions(functions)
    M = len(functions)
    sink_type = np.full(N, -1, dtype=np.int64)
    sinks = np.arange(N) if sinks is None else np.asarray(sinks, dtype=np.intp)
    sink_type[sinks] = 0
    _, _, phi, dphi = _run(positions, box, species, n_species, sink_type, kinds[None], params[None],
                           np.array([M], dtype=np.int64), cutoff=cutoff, neighbors=neighbors, store=True)
    phi = phi[sinks].reshape(len(sinks), n_species, M)
    if not gradient:
        return phi
    return phi, dphi[sinks].reshape(len(sinks), n_species, M, 3)


class LossForces:
    """Losses H_k (4.5) and forces F_k (4.6) of all agents, fused: the model's force evaluation.

    Args:
        losses: :class:`~agents.loss.AgentLosses` with one loss per species present.
        symbols: (N,) species symbol of every atom.
        box: cubic box side, angstrom.
        cutoff: None for the paper's all-pairs minimum-image sums; r_c (angstrom, <= box / 2) or a
            :class:`SmoothCutoff` for smoothly cut sums over a neighbour list.
        skin: neighbour-list skin, angstrom (cutoff mode); the list is rebuilt only after some atom
            moved more than skin / 2.

    ``H, F = LossForces(...)(positions)`` gives H (N,) in eV and F (N, 3) in eV/angstrom, equal to
    ``SpeciesLoss.evaluate(*invariants.compute(...))`` species by species.
    """

    def __init__(self, losses, symbols, box, cutoff=None, skin=DEFAULT_SKIN):
        symbols = list(symbols)
        present = list(dict.fromkeys(symbols))
        self.species_order = tuple(present)  # global source-species index = position here
        self.box = float(box)
        self.cutoff = as_cutoff(cutoff)
        lookup = {s: a for a, s in enumerate(present)}
        self.species = np.array([lookup[s] for s in symbols], dtype=np.int64)
        S = len(present)
        M = max(len(losses[s].invariants.functions) for s in present)
        P = S * M
        T = S
        self.kinds = np.zeros((T, M), dtype=np.int64)
        self.params = np.zeros((T, M))
        self.n_functions = np.zeros(T, dtype=np.int64)
        self.A = np.zeros((T, P))
        self.B = np.zeros((T, P, P))
        self.quadratic = np.zeros(T, dtype=np.bool_)
        for t, s in enumerate(present):
            loss = losses[s]
            sources = loss.invariants.sources
            if set(sources) != set(present):
                raise ValueError(f"the loss of {s} reads species {list(sources)}, the atoms are {present}")
            kinds, params = encode_functions(loss.invariants.functions)
            m_t = len(kinds)
            self.kinds[t, :m_t], self.params[t, :m_t], self.n_functions[t] = kinds, params, m_t
            # global flattened index a * M + m of the loss's own index b * m_t + m
            where = np.array([lookup[src] * M + m for src in sources for m in range(m_t)])
            self.A[t, where] = loss.A.reshape(-1)
            self.B[t, where[:, None], where[None, :]] = loss.B.reshape(len(where), len(where))
            self.quadratic[t] = bool(np.any(loss.B))
        self.sink_type = self.species.copy()
        self._plan = _plan(self.kinds, self.params, self.n_functions)
        self.neighbors = None
        if self.cutoff is not None:
            self.cutoff.check_box(self.box)
            self.neighbors = NeighborList(self.cutoff.r_c, skin=skin)

    def rebuild_neighbors(self, reference) -> None:
        """Build the neighbour list at ``reference`` positions (a checkpoint's; cutoff mode)."""
        self.neighbors.build(reference, self.box, self.species, len(self.species_order))

    def __call__(self, positions):
        H, F, _, _ = _run(positions, self.box, self.species, len(self.species_order), self.sink_type,
                          self.kinds, self.params, self.n_functions, self.A, self.B, self.quadratic,
                          cutoff=self.cutoff, neighbors=self.neighbors, plan=self._plan)
        return H, F

    def compiled(self, positions):
        """The force call for compiled code (:mod:`environment.fused`): ``(function, kernel, signature, args)``
        such that ``function(positions, H, F, kernel, args)`` writes what ``self(positions)`` returns into
        H (N,) and F (N, 3).  ``kernel`` is the compiled kernel :meth:`__call__` runs and ``signature`` its
        numba signature there: passed as a function pointer of that type, the very machine code of
        :meth:`__call__` runs (compiled into the caller, its ``reassoc`` sums could round differently;
        see ``_SINKS_LOADED``).

        In cutoff mode the neighbour list is first brought up to date at ``positions``; ``args`` hold it as
        built then, valid until an atom has moved skin / 2 from ``self.neighbors``' reference positions
        (the caller checks and asks again).  The number of chunks follows numba's current thread count.
        """
        positions = np.asarray(positions, dtype=np.float64)
        if not _SINKS_LOADED:
            self(positions)  # loads the stand-alone sink loops first (see _SINKS_LOADED)
        N = len(positions)
        n_species = len(self.species_order)
        nl = self.neighbors
        if nl is not None:
            nl.update(positions, self.box, self.species, n_species)
        return adapter_call(self, (None if nl is None else nl.n_builds, numba.get_num_threads(), N),
                            lambda: self._compiled_arguments(positions))

    def _compiled_arguments(self, positions):
        """(function, kernel, kernel arguments as :meth:`__call__` passes them, args) of :meth:`compiled`."""
        N = len(positions)
        n_species = len(self.species_order)
        idx, ptr, max_block, gather, rank, sink_order, allpairs, r_c, r_on = _source_layout(
            self.species, n_species, self.cutoff, self.neighbors)
        P = n_species * self.kinds.shape[1]
        args = (gather, rank, sink_order, self.box, self.sink_type, idx, ptr, allpairs, n_species, max(max_block, 1),
                r_c, r_on, self._plan, self.n_functions, self.A, self.B, self.quadratic, np.zeros((1, P)),
                np.zeros((1, P, 3)), max(1, min(N, 8 * numba.get_num_threads())))
        X = np.ascontiguousarray(positions[:, 0])
        kernel_arguments = (X, X, X, X, X, X, rank, self.box, self.sink_type, idx, ptr, allpairs, n_species, args[9],
                            r_c, r_on, *self._plan, self.n_functions, self.A, self.B, self.quadratic, True, False,
                            np.zeros(N), np.zeros((N, 3)), *args[-3:], sink_order)
        return _forces_into, _kernel, kernel_arguments, args


@njit(cache=True)
def _forces_into(positions, H, F, kernel, args):
    """H (N,) and F (N, 3) at ``positions`` (N, 3), written in place by ``kernel`` (:func:`_kernel`): what
    :meth:`LossForces.__call__` computes, from compiled code, with the arguments of :meth:`LossForces.compiled`."""
    (gather, rank, sink_order, box, sink_type, idx, ptr, allpairs, n_species, max_block, r_c, r_on, plan, n_functions,
     A, B, quadratic, phi, dphi, n_chunks) = args
    kinds, params, slope, base, power, order = plan
    X = np.ascontiguousarray(positions[:, 0])
    Y = np.ascontiguousarray(positions[:, 1])
    Z = np.ascontiguousarray(positions[:, 2])
    H[:] = 0.0
    F[:] = 0.0
    kernel(X, Y, Z, X[gather], Y[gather], Z[gather], rank, box, sink_type, idx, ptr, allpairs, n_species, max_block,
           r_c, r_on, kinds, params, slope, base, power, order, n_functions, A, B, quadratic, True, False, H, F,
           phi, dphi, n_chunks, sink_order)
