"""Fused compiled kernels for the invariants (4.1), the losses (4.5) and the agent forces (4.6).

Every atom k is a sink; for every source species a and weight function m of k's species

    phi[k, a, m]  = sum_i w_m(r_ki) S(r_ki)
    dphi[k, a, m] = sum_i d/dr [w_m S](r_ki) (q_k - q_i) / r_ki

contracted at once with the loss of k's species: H_k = A.phi + 1/2 phi.B phi and F_k = -(A + B phi).dphi.
Each unordered pair (k, i) is visited once: its distance and the weight functions of the union of both
species' sets (:func:`union_plan`) are evaluated once and feed both atoms' sums (dphi_i gets -g (q_k - q_i)).
Pairs come from all atoms (minimum image, the paper's sums; S = 1; pairs i > k in a numbering sorted by
species) or from the pairs j > k of a :class:`~environment.neighbors.NeighborList` (smooth cutoff S of
:mod:`agents.cutoff`).  Nothing of size (N, N) is ever stored.

The sinks are split into chunks of about equal pair counts, fixed by the system (never by the number of
threads); each chunk sums into its own rows (phi and dphi of the atoms it touches, 4 P numbers per atom),
and every atom's sums are added over the chunks in chunk order before the contraction, so the results do
not depend on the number of threads.  The kernels are numba-compiled (``cache=True``: compiled or loaded,
they give the same bits: see ``_SINKS_LOADED``) and evaluate exp() with a branch-free polynomial so the
inner loops vectorize (SIMD); it agrees with ``numpy.exp`` to ~1 ulp.  Weight functions that are integer
powers of another (exp(-r/2) = exp(-r/4)^2, gauss(s=2) = gauss(s=4)^4) reuse its exp().  Results agree with
the numpy reference to ~1e-15 relative (summation order differs).  Entry points:

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
from environment.neighbors import NeighborList

EXP, GAUSS, POW_INT, POW, EXP_POWER, GAUSS_POWER = 0, 1, 2, 3, 4, 5

_LOG2E = 1.4426950408889634
_LN2_HI = 0.693147180369123816490  # high bits of ln 2 (exact products with small integers)
_LN2_LO = 1.90821492927058770002e-10
_FLAGS = {"nsz", "contract", "reassoc", "arcp"}  # no 'nnan'/'ninf'/'afn': exp() stays accurate


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

@njit(cache=True, fastmath={"contract", "nsz"}, error_model="numpy")
def _exp(x):
    """exp(x) for x <= 0 (x below -700 is clamped), branch-free so that loops vectorize; ~1 ulp."""
    v = max(x, -700.0)
    nf = np.floor(v * _LOG2E + 0.5)
    r = (v - nf * _LN2_HI) - nf * _LN2_LO
    p = 1.0 / 6227020800.0
    p = p * r + 1.0 / 479001600.0
    p = p * r + 1.0 / 39916800.0
    p = p * r + 1.0 / 3628800.0
    p = p * r + 1.0 / 362880.0
    p = p * r + 1.0 / 40320.0
    p = p * r + 1.0 / 5040.0
    p = p * r + 1.0 / 720.0
    p = p * r + 1.0 / 120.0
    p = p * r + 1.0 / 24.0
    p = p * r + 1.0 / 6.0
    p = p * r + 0.5
    p = p * r + 1.0
    p = p * r + 1.0
    return p * _bits_to_float((np.int64(nf) + 1023) << 52)

@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def fast_exp(x):
    """The kernels' vectorized exp of a 1-d array of non-positive numbers (for tests)."""
    out = np.empty(x.size)
    for j in range(x.size):
        out[j] = _exp(x[j])
    return out

@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _pairs(k0, k1, X, Y, Z, box, stype, sspec, type_of, idx, ptr, allpairs, n_species, M, max_block, r_c, r_on,
           ukinds, uparams, ubase, upower, uorder, n_union, slot_k, slot_i, acc, off, L, lo):
    """Pairs (k, i > k) of the sinks k0 <= k < k1 (sorted numbering): both atoms' phi, dphi into ``acc``.

    ``acc[off:off + 4 P L]`` (zeroed here), as (P, 4, L), holds the rows lo <= r < lo + L: per channel
    p = a * M + m the sums phi, dphi_x, dphi_y, dphi_z of every row.  Each pair's distance and the weight functions of both sinks' sets (their union) are
    evaluated once: w_m feeds phi_k[species(i), m] and phi_i[species(k), m], and g = d/dr[w S] / r feeds
    dphi_k with +g (q_k - q_i) and dphi_i with -g (q_k - q_i).
    """
    U = ukinds.shape[2]
    inv_box = 1.0 / box
    geo = np.empty((7 + U + 1, max_block))
    dx = geo[0]
    dy = geo[1]
    dz = geo[2]
    rr = geo[3]
    sb = geo[4]
    sr = geo[5]
    sd = geo[6]
    gb = geo[7]
    wsave = geo[8:]
    P = n_species * M
    phi_loc = np.empty(P)
    dphi_loc = np.empty((P, 3))
    cut = r_c > 0.0
    inv_w = 1.0 / (r_c - r_on) if cut else 0.0
    acc[off:off + 4 * P * L] = 0.0
    ids = idx[:0]
    if allpairs:  # no switch: S' = 0
        sd[:] = 0.0
    for k in range(k0, k1):
        tk = stype[k]
        ak = sspec[k]
        phi_loc[:] = 0.0
        dphi_loc[:] = 0.0
        xk = X[k]
        yk = Y[k]
        zk = Z[k]
        for a in range(n_species):
            if allpairs:  # sources sorted by species: partners i > k of species a are contiguous
                # from a multiple of 8 past the block's start (k and the atoms before it masked: S = 0), so the
                # vectorized loops need no scalar remainder
                q0 = max(ptr[0, a], k + 1)
                q0 -= (q0 - ptr[0, a]) % 8
                n = ptr[0, a + 1] - q0
            else:  # the half list: partners i > k only
                q0 = ptr[k, a]
                n = ptr[k, a + 1] - q0
            if n <= 0:
                continue
            ti = type_of[a]
            # pair geometry: displacement q_k - q_i (minimum image), r, switch S, S / r^2, S' / r
            if allpairs:
                sx = X[q0:q0 + n]
                sy = Y[q0:q0 + n]
                sz = Z[q0:q0 + n]
                for jj in range(n):
                    ux = fold(xk - sx[jj], box, inv_box)
                    uy = fold(yk - sy[jj], box, inv_box)
                    uz = fold(zk - sz[jj], box, inv_box)
                    r2 = ux * ux + uy * uy + uz * uz
                    keep = q0 + jj > k
                    r2 = r2 if keep else 1.0
                    mask = 1.0 if keep else 0.0
                    dx[jj] = ux
                    dy[jj] = uy
                    dz[jj] = uz
                    rr[jj] = np.sqrt(r2)
                    sb[jj] = mask
                    sr[jj] = mask / r2
            else:
                ids = idx[q0:q0 + n]
                for jj in range(n):
                    j = ids[jj]
                    ux = fold(xk - X[j], box, inv_box)
                    uy = fold(yk - Y[j], box, inv_box)
                    uz = fold(zk - Z[j], box, inv_box)
                    dx[jj] = ux
                    dy[jj] = uy
                    dz[jj] = uz
                    rr[jj] = np.sqrt(ux * ux + uy * uy + uz * uz)
                if cut:
                    for jj in range(n):
                        r = rr[jj]
                        x = min(max((r - r_on) * inv_w, 0.0), 1.0)
                        sw = 1.0 - x * x * x * (10.0 - 15.0 * x + 6.0 * x * x)
                        sb[jj] = sw
                        sr[jj] = sw / (r * r)
                        sd[jj] = -30.0 * x * x * (1.0 - x) * (1.0 - x) * inv_w / r
                else:
                    for jj in range(n):
                        sb[jj] = 1.0
                        sr[jj] = 1.0 / (rr[jj] * rr[jj])
                        sd[jj] = 0.0
            for iu in range(n_union[tk, ti]):
                u = uorder[tk, ti, iu]
                kind = ukinds[tk, ti, u]
                c = uparams[tk, ti, u]
                w_u = wsave[u]
                # w, g = (w' S + w S') / r with w' = -c w (exp), -2 c r w (gauss), -n w / r (pow), and sink k's
                # sums (used if k's set has the function); one loop per kind (these vectorize)
                s0 = 0.0
                s1 = 0.0
                s2 = 0.0
                s3 = 0.0
                if kind == EXP:
                    for jj in range(n):
                        w = _exp(-c * rr[jj])
                        w_u[jj] = w
                        g = w * (sd[jj] - c * sr[jj] * rr[jj])
                        s0 += w * sb[jj]
                        s1 += g * dx[jj]
                        s2 += g * dy[jj]
                        s3 += g * dz[jj]
                elif kind == GAUSS:
                    c2 = 2.0 * c
                    for jj in range(n):
                        w = _exp(-c * rr[jj] * rr[jj])
                        w_u[jj] = w
                        g = w * (sd[jj] - c2 * sb[jj])
                        s0 += w * sb[jj]
                        s1 += g * dx[jj]
                        s2 += g * dy[jj]
                        s3 += g * dz[jj]
                elif kind == EXP_POWER or kind == GAUSS_POWER:
                    w_b = wsave[ubase[tk, ti, u]]
                    e = upower[tk, ti, u]
                    c2 = 2.0 * c
                    gauss = kind == GAUSS_POWER
                    for jj in range(n):
                        v = w_b[jj]
                        v2 = v * v
                        w = v2 if e == 2 else (v2 * v if e == 3 else v2 * v2)
                        w_u[jj] = w
                        g = w * (sd[jj] - c2 * sb[jj] if gauss else sd[jj] - c * sr[jj] * rr[jj])
                        s0 += w * sb[jj]
                        s1 += g * dx[jj]
                        s2 += g * dy[jj]
                        s3 += g * dz[jj]
                else:
                    if kind == POW_INT:
                        for jj in range(n):
                            w_u[jj] = 1.0
                        for _ in range(int(c)):
                            for jj in range(n):
                                w_u[jj] /= rr[jj]
                    else:
                        for jj in range(n):
                            w_u[jj] = rr[jj] ** (-c)
                    for jj in range(n):
                        w = w_u[jj]
                        g = w * (sd[jj] - c * sr[jj])
                        s0 += w * sb[jj]
                        s1 += g * dx[jj]
                        s2 += g * dy[jj]
                        s3 += g * dz[jj]
                mk = slot_k[tk, ti, u]
                mi = slot_i[tk, ti, u]
                # sink i's channel (species(k), mi): rows of 4 sums (phi, dphi_x, dphi_y, dphi_z) per atom
                base = off + 4 * (ak * M + mi) * L + (q0 - lo if allpairs else -lo)
                # slices: indices >= 0 need no negative-index wraparound, so the loops vectorize
                t0 = acc[base:base + n]
                t1 = acc[base + L:base + L + n]
                t2 = acc[base + 2 * L:base + 2 * L + n]
                t3 = acc[base + 3 * L:base + 3 * L + n]
                if mi >= 0:
                    # g again from w (cheaper than storing it: one stored stream per loop vectorizes)
                    ce = c if kind == EXP or kind == EXP_POWER else 0.0
                    cg = 2.0 * c if kind == GAUSS or kind == GAUSS_POWER else 0.0
                    cp = c if kind == POW_INT or kind == POW else 0.0
                    for jj in range(n):
                        gb[jj] = w_u[jj] * (sd[jj] - (ce * rr[jj] + cp) * sr[jj] - cg * sb[jj])
                if mi >= 0 and allpairs:  # one stored stream per loop (these vectorize)
                    for jj in range(n):
                        t0[jj] += w_u[jj] * sb[jj]
                    for jj in range(n):
                        t1[jj] -= gb[jj] * dx[jj]
                    for jj in range(n):
                        t2[jj] -= gb[jj] * dy[jj]
                    for jj in range(n):
                        t3[jj] -= gb[jj] * dz[jj]
                elif mi >= 0:  # scattered rows
                    for jj in range(n):
                        g = gb[jj]
                        j = base + ids[jj]
                        acc[j] += w_u[jj] * sb[jj]
                        acc[j + L] -= g * dx[jj]
                        acc[j + 2 * L] -= g * dy[jj]
                        acc[j + 3 * L] -= g * dz[jj]
                if mk >= 0:
                    pk = a * M + mk
                    phi_loc[pk] += s0
                    dphi_loc[pk, 0] += s1
                    dphi_loc[pk, 1] += s2
                    dphi_loc[pk, 2] += s3
        for p in range(P):
            o = off + 4 * p * L + k - lo
            acc[o] += phi_loc[p]
            for x in range(3):
                acc[o + (1 + x) * L] += dphi_loc[p, x]


@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _rows(r0, r1, acc, offsets, lo, width, order, stype, P, A, B, quadratic, contract, store, H, F, phi_out, dphi_out):
    """Rows r0 <= r < r1 (sorted numbering): phi, dphi summed over the chunks in chunk order, then
    H_k = A.phi + 1/2 phi.B phi and F_k = -(A + B phi).dphi (and phi, dphi if ``store``) of atom order[r]."""
    phi = np.empty(P)
    dphi = np.empty((P, 3))
    coef = np.empty(P)
    for r in range(r0, r1):
        phi[:] = 0.0
        dphi[:] = 0.0
        for c in range(lo.size):
            o = r - lo[c]
            if o < 0 or o >= width[c]:
                continue
            L = width[c]
            for p in range(P):
                q = offsets[c] + 4 * p * L + o
                phi[p] += acc[q]
                dphi[p, 0] += acc[q + L]
                dphi[p, 1] += acc[q + 2 * L]
                dphi[p, 2] += acc[q + 3 * L]
        k = order[r]
        t = stype[r]
        if store:
            for p in range(P):
                phi_out[k, p] = phi[p]
                for x in range(3):
                    dphi_out[k, p, x] = dphi[p, x]
        if contract:
            h = 0.0
            for p in range(P):
                c = A[t, p]
                if quadratic[t]:
                    b = 0.0
                    for q in range(P):
                        b += B[t, p, q] * phi[q]
                    h += (c + 0.5 * b) * phi[p]
                    c += b
                else:
                    h += c * phi[p]
                coef[p] = c
            fx = 0.0
            fy = 0.0
            fz = 0.0
            for p in range(P):
                fx -= coef[p] * dphi[p, 0]
                fy -= coef[p] * dphi[p, 1]
                fz -= coef[p] * dphi[p, 2]
            H[k] = h
            F[k, 0] = fx
            F[k, 1] = fy
            F[k, 2] = fz


@njit(cache=True, parallel=True)
def _kernel(X, Y, Z, box, stype, sspec, type_of, idx, ptr, allpairs, n_species, M, max_block, r_c, r_on,
            ukinds, uparams, ubase, upower, uorder, n_union, slot_k, slot_i, bounds, lo, width, offsets, acc,
            order, A, B, quadratic, contract, store, H, F, phi_out, dphi_out, n_rows_chunks):
    """All pairs, chunk by chunk (chunk c: sinks bounds[c] <= k < bounds[c + 1], its rows in its own part of
    ``acc``), then every atom's sums over the chunks and its H, F (and phi, dphi if ``store``)."""
    P = n_species * M
    for c in prange(lo.size):
        _pairs(bounds[c], bounds[c + 1], X, Y, Z, box, stype, sspec, type_of, idx, ptr, allpairs, n_species, M,
               max_block, r_c, r_on, ukinds, uparams, ubase, upower, uorder, n_union, slot_k, slot_i, acc,
               offsets[c], width[c], lo[c])
    N = X.size
    for chunk in prange(n_rows_chunks):
        _rows(chunk * N // n_rows_chunks, (chunk + 1) * N // n_rows_chunks, acc, offsets, lo, width, order,
              stype, P, A, B, quadratic, contract, store, H, F, phi_out, dphi_out)


@njit(cache=True)
def _half_list(idx, ptr):
    """The neighbour list's pairs (s, j) with j > s (each pair once), rows and species as in the list;
    also the largest partner of every row (-1 for none) and the longest (row, species) block."""
    N, S1 = ptr.shape
    half_ptr = np.zeros((N, S1), dtype=np.int64)
    n = 0
    for s in range(N):
        for a in range(S1 - 1):
            half_ptr[s, a] = n
            for q in range(ptr[s, a], ptr[s, a + 1]):
                if idx[q] > s:
                    n += 1
        half_ptr[s, S1 - 1] = n
    half = np.empty(n, dtype=np.int32)
    row_max = np.full(N, -1, dtype=np.int64)
    max_block = 0
    n = 0
    for s in range(N):
        for a in range(S1 - 1):
            for q in range(ptr[s, a], ptr[s, a + 1]):
                j = idx[q]
                if j > s:
                    half[n] = j
                    n += 1
                    row_max[s] = max(row_max[s], j)
            max_block = max(max_block, half_ptr[s, a + 1] - half_ptr[s, a])
    return half, half_ptr, row_max, max_block


#: Non-empty once the stand-alone :func:`_pairs` and :func:`_rows` have been loaded in this process
#: (before any :func:`_kernel`).
#:
#: Why: they are compiled with ``reassoc`` (so their sums vectorize), which lets LLVM choose the order of
#: the additions.  Numba keeps two machine-code copies of each: its own library, and the copy linked into
#: ``_kernel``'s library and optimized again there; the two round differently (about 1e-12 relative).  A
#: ``_kernel`` compiled in this process calls the stand-alone copy (the JIT resolves the symbol to the
#: first definition it loaded), but a ``_kernel`` loaded from numba's cache used its own copy: the same
#: run gave other numbers on its first (compiling) and later (cache-loading) runs.  Loading them first
#: makes every process call the stand-alone copies, cold cache or warm (tests/test_long_runs.py).
_SINKS_LOADED: list = []

#: Pairs per chunk of work (the chunks are fixed by the system, not by the thread count, so the sums and
#: the results do not depend on the number of threads), and the most chunks (each holds its own rows).
PAIRS_PER_CHUNK = 16384
MAX_CHUNKS = 16


def _chunks(pairs_per_row, last_partner):
    """Sink ranges of about equal pair counts and the rows each one writes: bounds (C+1,), lo (C,), width (C,)."""
    N = len(pairs_per_row)
    cumulative = np.concatenate([[0], np.cumsum(pairs_per_row)])
    n_chunks = int(min(MAX_CHUNKS, max(1, cumulative[-1] // PAIRS_PER_CHUNK)))
    bounds = np.searchsorted(cumulative, np.arange(n_chunks + 1) * (cumulative[-1] / n_chunks)).astype(np.int64)
    bounds[0], bounds[-1] = 0, N
    bounds = np.maximum.accumulate(np.minimum(bounds, N))
    lo = np.maximum(bounds[:-1] - 8, 0)  # all pairs: up to 7 masked rows before a sink
    hi = np.array([max(bounds[c + 1], int(last_partner[bounds[c]:bounds[c + 1]].max(initial=-1)) + 1)
                   for c in range(n_chunks)], dtype=np.int64)
    return bounds, lo, hi - lo


def union_plan(kinds, params, n_functions):
    """The weight functions of every pair of sink types (tk, ti), evaluated once per pair: their union.

    Returns kinds, params, base, power, order (as :func:`plan_powers`; shape (T, T, U)), n_union (T, T)
    and slot_k, slot_i (T, T, U): the function's index in tk's (ti's) set, or -1 if that set lacks it.
    """
    T, M = kinds.shape
    U = 2 * M
    out_kinds = np.zeros((T, T, U), dtype=np.int64)
    out_params = np.zeros((T, T, U))
    base = np.full((T, T, U), -1, dtype=np.int64)
    power = np.ones((T, T, U), dtype=np.int64)
    order = np.tile(np.arange(U, dtype=np.int64), (T, T, 1))
    n_union = np.zeros((T, T), dtype=np.int64)
    slot_k = np.full((T, T, U), -1, dtype=np.int64)
    slot_i = np.full((T, T, U), -1, dtype=np.int64)
    for tk in range(T):
        for ti in range(T):
            union = [(kinds[tk, m], params[tk, m]) for m in range(n_functions[tk])]
            slot_k[tk, ti, :len(union)] = np.arange(len(union))
            for m in range(n_functions[ti]):
                f = (kinds[ti, m], params[ti, m])
                u = next((u for u, g in enumerate(union) if g == f and slot_i[tk, ti, u] < 0), len(union))
                if u == len(union):
                    union.append(f)
                slot_i[tk, ti, u] = m
            n = len(union)
            n_union[tk, ti] = n
            k, p = np.array([f[0] for f in union], dtype=np.int64), np.array([f[1] for f in union])
            out_params[tk, ti, :n] = p
            out_kinds[tk, ti, :n], base[tk, ti, :n], power[tk, ti, :n], order[tk, ti, :n] = plan_powers(k, p)
    return out_kinds, out_params, base, power, order, n_union, slot_k, slot_i


def _half_neighbors(neighbors):
    """The half list of ``neighbors`` (cached on it until its next build)."""
    cached = getattr(neighbors, "_half", None)
    if cached is None or cached[0] != neighbors.n_builds or cached[1] is not neighbors.indices:
        cached = (neighbors.n_builds, neighbors.indices, *_half_list(neighbors.indices, neighbors.pointers))
        neighbors._half = cached
    return cached[2:]


def _run(positions, box, species, type_of, kinds, params, n_functions,
         A=None, B=None, quadratic=None, cutoff=None, neighbors=None, store=False, plan=None):
    """Shared driver of the kernel; every atom is a sink of type ``type_of[species]``.

    Returns H, F, phi (N, S*M), dphi (N, S*M, 3) (some unused)."""
    positions = np.asarray(positions, dtype=np.float64)
    box = float(box)
    N = len(positions)
    species = np.asarray(species, dtype=np.int64)
    n_species = len(type_of)
    cutoff = as_cutoff(cutoff)
    if cutoff is None:
        order = np.argsort(species, kind="stable")
        counts = np.bincount(species, minlength=n_species)
        ptr = np.zeros((1, n_species + 1), dtype=np.int64)
        ptr[0, 1:] = np.cumsum(counts)
        idx = np.zeros(1, dtype=np.int32)
        allpairs, r_c, r_on, max_block = True, 0.0, 0.0, int(counts.max())
        bounds, lo, width = _chunks(np.arange(N - 1, -1, -1), np.full(N, N - 1))
    else:
        cutoff.check_box(box)
        if neighbors is None:
            neighbors = NeighborList(cutoff.r_c, skin=0.0)
        if neighbors.cutoff < cutoff.r_c:
            raise ValueError(f"the neighbour list's cutoff {neighbors.cutoff} is below r_c = {cutoff.r_c}")
        neighbors.update(positions, box, species, n_species)
        # the list's sorted numbering: neighbours of consecutive sinks lie close in memory
        order = neighbors.order
        idx, ptr, last, max_block = _half_neighbors(neighbors)
        allpairs, r_c, r_on = False, cutoff.r_c, cutoff.r_on
        bounds, lo, width = _chunks(ptr[:, -1] - ptr[:, 0], last)
    X, Y, Z = (np.ascontiguousarray(positions[order, x]) for x in range(3))
    sspec = np.ascontiguousarray(species[order])
    stype = np.ascontiguousarray(type_of[sspec])
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
    plan = union_plan(kinds, params, n_functions) if plan is None else plan
    offsets = np.zeros(len(lo) + 1, dtype=np.int64)
    offsets[1:] = np.cumsum(4 * P * width)
    acc = np.empty(int(offsets[-1]))
    max_block = max(max_block, 1)
    if not _SINKS_LOADED:
        # Load the stand-alone workers into the JIT before _kernel (see _SINKS_LOADED): empty ranges.
        _pairs(0, 0, X, Y, Z, box, stype, sspec, type_of, idx, ptr, allpairs, n_species, M, max_block, r_c, r_on,
               *plan, acc, 0, 0, 0)
        _rows(0, 0, acc, offsets, lo, width, order, stype, P, A, B, quadratic, contract, store, H, F, phi, dphi)
        _SINKS_LOADED.append(True)
    _kernel(X, Y, Z, box, stype, sspec, type_of, idx, ptr, allpairs, n_species, M, max_block, r_c, r_on,
            *plan, bounds, lo, width, offsets, acc, order, A, B, quadratic, contract, store, H, F, phi, dphi,
            max(1, min(N, 8 * numba.get_num_threads())))
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
    kinds, params = encode_functions(functions)
    M = len(functions)
    sinks = np.arange(len(positions)) if sinks is None else np.asarray(sinks, dtype=np.intp)
    # every atom is a sink (pairs are visited once for both atoms); the rows of ``sinks`` are kept
    _, _, phi, dphi = _run(positions, box, species, np.zeros(n_species, dtype=np.int64), kinds[None],
                           params[None], np.array([M], dtype=np.int64), cutoff=cutoff, neighbors=neighbors,
                           store=True)
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

    def __init__(self, losses, symbols, box, cutoff=None, skin=1.0):
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
        self._plan = union_plan(self.kinds, self.params, self.n_functions)
        self.neighbors = None
        if self.cutoff is not None:
            self.cutoff.check_box(self.box)
            self.neighbors = NeighborList(self.cutoff.r_c, skin=skin)

    def rebuild_neighbors(self, reference) -> None:
        """Build the neighbour list at ``reference`` positions (a checkpoint's; cutoff mode)."""
        self.neighbors.build(reference, self.box, self.species, len(self.species_order))

    def __call__(self, positions):
        H, F, _, _ = _run(positions, self.box, self.species, np.arange(len(self.species_order)), self.kinds, self.params, self.n_functions, self.A, self.B, self.quadratic,
                          cutoff=self.cutoff, neighbors=self.neighbors, plan=self._plan)
        return H, F

