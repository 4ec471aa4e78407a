"""Compiled force evaluation of descriptor losses (own and shared form) over a neighbour list.

The numba counterpart of ``DescriptorLoss.evaluate`` (:mod:`agents.descriptor_loss`): cutoff radial
and angular descriptors (:mod:`agents.descriptors`, DESIGN.md "Beyond the paper"), quadratic losses
(4.5), the pair wall.  Centres run in parallel chunks; one pass per centre i, with neighbours from a
:class:`~environment.neighbors.NeighborList` of radius r_c + skin and small per-thread buffers:

1. the neighbours within r_c, grouped by species, those within the angular features' largest r_c
   first in each group (only they form pairs); their switch f_c, f_c' and, per distinct
   (eta, r_c), the angular legs G = exp(-eta r^2) f_c and G';
2. phi(i): each distinct radial function (weight, r_c) once over all neighbours, whatever their species
   (w f_c and its slope (w f_c)', kept for step 4; exp(-r/2) = exp(-r/4)^2 and gauss(s=1) =
   gauss(s=2)^4 share one exp(): :func:`environment.kernels.plan_powers`), summed per source species;
   then every neighbour pair {n1, n2} of a species pair that has features, laid out as runs (fixed n1,
   consecutive n2) with cos theta, the factors K_t(c) = 2^(1-zeta) (1 + lambda c)^zeta and K_t'(c) of
   the distinct (zeta, lambda), and the leg products G(r1) G(r2), G'(r1) G(r2), G(r1) G'(r2); the
   angular features of a species pair form a (leg u, factor t) grid, and phi_(u,t) is the sum over its
   pairs of K_t G_u G_u, four factors per pass over the pairs;
3. c_i = A + B phi(i) (B restricted to its nonzero rows and columns Q) and H_i (4.5);
4. the contraction c_i . d phi(i) / dq without storing the Jacobian: per pair, the coefficients are
   first summed per leg u, CA_u = sum_t c_(u,t) K_t(c), CD_u = sum_t c_(u,t) K_t'(c) (four factors per
   pass); with
   alpha1 = sum_u CA_u G_u'(r1) G_u(r2), alpha2 = sum_u CA_u G_u(r1) G_u'(r2),
   beta = sum_u CD_u G_u(r1) G_u(r2), the pair gives sum_f c_f dT_f/dq_n1 =
   (alpha1 - beta c / r1) u1 + (beta / r1) u2 (n2 likewise); radial terms give c_f (w f_c)'(r) u_n;
5. ``own``: only the centre's row, F_i = -c_i . d phi(i)/dq_i (4.6); ``shared``: also the
   neighbours' rows -c_i . d phi(i)/dq_n.

A set whose angular features all have zeta <= 2 forms no pairs (:data:`MOMENT_RANK`): since
(1 + lambda c)^zeta is then a polynomial of degree 2 in c = e1 . e2, each feature is a combination of
S_m = sum over pairs of c^m G_u(r1) G_u(r2), m = 0, 1, 2, and S_m = sum_k weight_k M_a[k] M_b[k] over the
moments M_a[k] = sum_(n in a) G_u(r_n) e_n^k (monomials 1, e_x, ..., e_z e_z) of each species' neighbours
(for a = b: (that - sum G^2) / 2, each unordered pair once).  Their gradient needs, per neighbour, the
partner's moments weighted by c_f: O(neighbours) per centre instead of O(neighbours^2).

Contracting pair by pair costs a few multiply-adds per feature and pair, where a Jacobian buffer
(P x neighbours x 3 per centre) would cost six and a second pass over it.  The shared form scatters
into other atoms' rows, which other chunks write too: every chunk has its own (N, 3) force buffer,
summed at the end (N x 3 x chunks adds, negligible).  The chunk count is fixed (:data:`CHUNKS`), so the
results are the same bits for any number of threads, unlike atomics.  The wall V = eps (sigma/r)^12 f_c(r)
is a symmetric pair term, so each centre takes its own row (F_i = sum_n V'(r) u_n) and H_i gets V (own)
or V / 2 (shared).  Loops over pairs run
on slices from index 0 (no negative-index wraparound), so they vectorize.  Results agree with the
numpy path to ~1e-15 relative.  Units: angstrom, eV, eV/angstrom.
"""

from __future__ import annotations

import math

import numpy as np
from numba import njit, prange

from agents.descriptor_loss import DescriptorLoss
from agents.descriptors import DescriptorSet
from environment.fused import adapter_call
from environment.neighbors import DEFAULT_SKIN, NeighborList
from environment.kernels import (EXP, EXP_POWER, GAUSS, GAUSS_POWER, _exp, _inv_sqrt, _power_law, _power_of,
                                 encode_functions, plan_powers)
from agents.cutoff import SmoothCutoff

_FLAGS = {"nsz", "contract", "reassoc", "arcp"}
#: Centres are split into this many chunks whatever the number of threads, so the sum of the chunks' force
#: buffers, and hence every bit of the result, is the same for any thread count.
CHUNKS = 8
#: Angular factors are taken this many at a time in the loops over neighbour pairs (one pass over the pairs
#: reads FACTOR_BLOCK rows of K_t and updates the sums of all of them).
FACTOR_BLOCK = 4
#: A set whose angular features all have zeta <= 2 sums them through moments of the neighbours' unit vectors
#: (O(neighbours) per centre) instead of pair by pair (O(neighbours^2)): (1 + lambda c)^zeta is then a polynomial
#: of degree 2 in c = e_1 . e_2, and c^m = sum_(|k| = m) weight_k e_1^k e_2^k over the MOMENTS monomials
#: e^k = e_x^kx e_y^ky e_z^kz, in the order 1, x, y, z, xx, xy, xz, yy, yz, zz, of rank MOMENT_OF and multinomial
#: weight MOMENT_WEIGHT.  A set with larger zeta (the many-body preset) forms the pairs anyway; moving its zeta <= 2
#: features to moments did not pay there (0.94-0.98x, 128 waters, one process), so all its features stay on pairs.
MOMENT_RANK = 2
MOMENTS = 10
MOMENT_OF = np.array([0, 1, 1, 1, 2, 2, 2, 2, 2, 2], dtype=np.int64)
MOMENT_WEIGHT = np.array([1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0, 1.0, 2.0, 1.0])


def _switch_params(rc):
    """(r_c, r_on) of the descriptors' switch at cutoff ``rc``."""
    s = SmoothCutoff(rc)
    return s.r_c, s.r_on


class EncodedDescriptors:
    """A descriptor set as flat arrays for the kernel.

    Args:
        descriptors: the set.
        species: every species symbol the atoms may have, in index order (a superset of the sources).

    Attributes (all numpy arrays):
        rc, ron (C,): distinct cutoffs and their switch starts.
        rad_p, rad_src, rad_fn (R,): radial features: global index p, source species, radial function j.
        fn_plan (J, 4), fn_param (J,): the distinct radial functions (weight, cutoff): kind (as
            :func:`environment.kernels.encode_functions`, or EXP_POWER / GAUSS_POWER for w = w_base^power),
            base function (-1: none), power, cutoff index; and the weight's parameter.  Bases come first.
        leg_eta, leg_cut (U,): distinct angular legs (eta, cutoff index), of every angular feature.
        mom_p, mom_grp, mom_leg (F,): the angular features summed through moments (all of them if every zeta
            <= :data:`MOMENT_RANK`, else none): index p, species pair a * S + b (a <= b), leg u.
        mom_coef (F, 3): their weights of S_m = sum over pairs of c^m G_u G_u, 2^(1-zeta) binom(zeta, m) lambda^m.
        ang_zeta, ang_lam (Z,): distinct angular factors (zeta, lambda) of the features summed pair by pair.
        grp_ptr (S*S+1,): those features counted by species pair a * S + b (a <= b): a pair with
            none forms no neighbour pairs.
        grp_cell (S*S, U, Z'): the feature index p of each species pair, leg u and factor t (-1: none);
            Z' = Z rounded up to whole blocks of :data:`FACTOR_BLOCK`.
    """

    def __init__(self, descriptors: DescriptorSet, species):
        species = list(species)
        missing = set(descriptors.species) - set(species)
        if missing:
            raise ValueError(f"species {sorted(missing)} of the descriptors are not in {species}")
        S = len(species)
        cutoffs = sorted({f.function.rc for f in descriptors.features})
        self.rc = np.array([_switch_params(rc)[0] for rc in cutoffs])
        self.ron = np.array([_switch_params(rc)[1] for rc in cutoffs])
        radial = [(p, f) for p, f in enumerate(descriptors.features) if not f.angular]
        # distinct radial functions (weight, cutoff), each evaluated once per neighbour whatever its species;
        # within a cutoff, exponentials shared by plan_powers (bases first)
        functions = []
        for rc in cutoffs:
            weights = list(dict.fromkeys(f.function.weight for _, f in radial if f.function.rc == rc))
            if not weights:
                continue
            kinds, params = encode_functions(weights)
            kinds, base, power, order = plan_powers(kinds, params)
            place = {int(m): len(functions) + i for i, m in enumerate(order)}
            for m in order:
                functions.append((weights[m], rc, kinds[m], place[int(base[m])] if base[m] >= 0 else -1, power[m],
                                  params[m]))
        self.fn_plan = np.array([(kind, b, n, cutoffs.index(rc)) for _, rc, kind, b, n, _ in functions],
                                dtype=np.int64).reshape(len(functions), 4)
        self.fn_param = np.array([par for *_, par in functions], dtype=np.float64)
        lookup = {(w, rc): j for j, (w, rc, *_) in enumerate(functions)}
        self.rad_p = np.array([p for p, _ in radial], dtype=np.int64)
        self.rad_src = np.array([species.index(f.sources[0]) for _, f in radial], dtype=np.int64)
        self.rad_fn = np.array([lookup[(f.function.weight, f.function.rc)] for _, f in radial], dtype=np.int64)
        every_angular = [(p, f) for p, f in enumerate(descriptors.features) if f.angular]
        legs = list(dict.fromkeys((f.function.eta, f.function.rc) for _, f in every_angular))
        self.leg_eta = np.array([eta for eta, _ in legs])
        self.leg_cut = np.array([cutoffs.index(rc) for _, rc in legs], dtype=np.int64)

        def group(f):
            a, b = sorted(species.index(s) for s in f.sources)
            return a * S + b

        # a set whose angular features all have zeta <= MOMENT_RANK: sums of S_m = sum over pairs of c^m G_u G_u;
        # a set with others forms the neighbour pairs anyway, and then all are summed pair by pair
        through_moments = all(f.function.zeta <= MOMENT_RANK for _, f in every_angular)
        moments = every_angular if through_moments else []
        self.mom_p = np.array([p for p, _ in moments], dtype=np.int64)
        self.mom_grp = np.array([group(f) for _, f in moments], dtype=np.int64)
        self.mom_leg = np.array([legs.index((f.function.eta, f.function.rc)) for _, f in moments], dtype=np.int64)
        self.mom_coef = np.zeros((len(moments), MOMENT_RANK + 1))
        for row, (_, f) in zip(self.mom_coef, moments):
            zeta, lam = f.function.zeta, f.function.lam
            row[:zeta + 1] = [2.0 ** (1 - zeta) * math.comb(zeta, m) * lam**m for m in range(zeta + 1)]
        angular = [] if through_moments else every_angular
        factors = list(dict.fromkeys((f.function.zeta, f.function.lam) for _, f in angular))
        self.ang_zeta = np.array([z for z, _ in factors], dtype=np.int64)
        self.ang_lam = np.array([lam for _, lam in factors], dtype=np.float64)
        angular.sort(key=lambda item: group(item[1]))
        counts = np.bincount([group(f) for _, f in angular], minlength=S * S) if angular else np.zeros(S * S, int)
        self.grp_ptr = np.concatenate([[0], np.cumsum(counts)]).astype(np.int64)
        # the (leg u, factor t) grid of each group; factors padded to whole blocks of FACTOR_BLOCK
        n_factors = -(-len(factors) // FACTOR_BLOCK) * FACTOR_BLOCK
        self.grp_cell = np.full((S * S, len(legs), n_factors), -1, dtype=np.int64)
        for p, f in angular:
            u = legs.index((f.function.eta, f.function.rc))
            self.grp_cell[group(f), u, factors.index((f.function.zeta, f.function.lam))] = p


@njit(cache=True, inline="always")
def _quintic(r, r_c, r_on):
    """Switch S(r) and S'(r) of :class:`agents.cutoff.SmoothCutoff`."""
    inv_w = 1.0 / (r_c - r_on)
    x = min(max((r - r_on) * inv_w, 0.0), 1.0)
    return 1.0 - x * x * x * (10.0 - 15.0 * x + 6.0 * x * x), -30.0 * x * x * (1.0 - x) * (1.0 - x) * inv_w


@njit(cache=True, fastmath=_FLAGS, error_model="numpy", inline="always")
def _radial(kind, par, power, r, inv_r, sw, dsw, base_w, w, value, slope):
    """One radial function over distances ``r``: w (the weight alone), value = w f_c, slope = (w f_c)';
    ``base_w`` holds the base's w where w = base_w^power (EXP_POWER, GAUSS_POWER).  One loop per kind, so
    that each vectorizes."""
    n = r.shape[0]
    if kind == EXP_POWER or kind == GAUSS_POWER:
        for k in range(n):
            w[k] = _power_of(base_w[k], power)
    elif kind == EXP:
        for k in range(n):
            w[k] = _exp(-par * r[k])
    elif kind == GAUSS:
        for k in range(n):
            w[k] = _exp(-par * r[k] * r[k])
    else:
        _power_law(kind, par, n, r, inv_r, w)
    for k in range(n):  # (each loop writes one array: few enough run-time alias checks to vectorize)
        value[k] = w[k] * sw[k]
    if kind == EXP or kind == EXP_POWER:
        for k in range(n):
            slope[k] = w[k] * (dsw[k] - par * sw[k])
    elif kind == GAUSS or kind == GAUSS_POWER:
        for k in range(n):
            slope[k] = w[k] * (dsw[k] - 2.0 * par * r[k] * sw[k])
    else:
        for k in range(n):
            slope[k] = w[k] * (dsw[k] - par * inv_r[k] * sw[k])


@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _moment_sums(S, block, inner, ex, ey, ez, g, mom, sum_g2, mom_p, mom_grp, mom_leg, mom_coef, phi):
    """Step 3 of a set summed through moments: mom (S, U, MOMENTS) and sum_g2 (S, U) of one centre's inner
    neighbours (species a: block[a] <= n < inner[a]), and each feature's S_m combination added to phi."""
    n_leg = g.shape[0]
    for a in range(S):
        lo, hi = block[a], inner[a]
        x_a, y_a, z_a = ex[lo:hi], ey[lo:hi], ez[lo:hi]
        for u in range(n_leg):
            gu = g[u, lo:hi]
            s_g2 = s_1 = s_x = s_y = s_z = s_xx = s_xy = s_xz = s_yy = s_yz = s_zz = 0.0
            for n in range(hi - lo):
                gn = gu[n]
                s_g2 += gn * gn
                s_1 += gn
                gx = gn * x_a[n]
                gy = gn * y_a[n]
                gz = gn * z_a[n]
                s_x += gx
                s_y += gy
                s_z += gz
                s_xx += gx * x_a[n]
                s_xy += gx * y_a[n]
                s_xz += gx * z_a[n]
                s_yy += gy * y_a[n]
                s_yz += gy * z_a[n]
                s_zz += gz * z_a[n]
            sum_g2[a, u] = s_g2
            mom[a, u, 0] = s_1
            mom[a, u, 1] = s_x
            mom[a, u, 2] = s_y
            mom[a, u, 3] = s_z
            mom[a, u, 4] = s_xx
            mom[a, u, 5] = s_xy
            mom[a, u, 6] = s_xz
            mom[a, u, 7] = s_yy
            mom[a, u, 8] = s_yz
            mom[a, u, 9] = s_zz
    for f in range(mom_p.shape[0]):
        a = mom_grp[f] // S
        b = mom_grp[f] % S
        u = mom_leg[f]
        val = 0.0
        for j in range(MOMENTS):
            val += mom_coef[f, MOMENT_OF[j]] * MOMENT_WEIGHT[j] * mom[a, u, j] * mom[b, u, j]
        if a == b:
            val = 0.5 * (val - (mom_coef[f, 0] + mom_coef[f, 1] + mom_coef[f, 2]) * sum_g2[a, u])
        phi[mom_p[f]] += val


@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _moment_forces(S, block, inner, ex, ey, ez, inv_r, g, dg, mom, part, gam, mom_p, mom_grp, mom_leg, mom_coef,
                   coef, fx, fy, fz):
    """Step 4 of a set summed through moments: sum_f c_f dT_f/dq_n (coefficients ``coef``) subtracted from each
    inner neighbour's fx, fy, fz; ``part`` (S, U, MOMENTS) and ``gam`` (S, U) are work space."""
    n_leg = g.shape[0]
    part[:, :, :] = 0.0
    gam[:, :] = 0.0
    for f in range(mom_p.shape[0]):
        a = mom_grp[f] // S
        b = mom_grp[f] % S
        u = mom_leg[f]
        cf = coef[mom_p[f]]
        for j in range(MOMENTS):
            w = cf * mom_coef[f, MOMENT_OF[j]] * MOMENT_WEIGHT[j]
            part[a, u, j] += w * mom[b, u, j]
            if a != b:
                part[b, u, j] += w * mom[a, u, j]
        if a == b:
            gam[a, u] += cf * (mom_coef[f, 0] + mom_coef[f, 1] + mom_coef[f, 2])
    for a in range(S):
        lo, hi = block[a], inner[a]  # slices from 0 (no wraparound checks), so the loop over n vectorizes
        x_a, y_a, z_a, ir_a = ex[lo:hi], ey[lo:hi], ez[lo:hi], inv_r[lo:hi]
        fx_a, fy_a, fz_a = fx[lo:hi], fy[lo:hi], fz[lo:hi]
        for u in range(n_leg):
            p0, px, py, pz = part[a, u, 0], part[a, u, 1], part[a, u, 2], part[a, u, 3]
            pxx, pxy, pxz = part[a, u, 4], part[a, u, 5], part[a, u, 6]
            pyy, pyz, pzz = part[a, u, 7], part[a, u, 8], part[a, u, 9]
            ga = gam[a, u]
            gu = g[u, lo:hi]
            dgu = dg[u, lo:hi]
            for n in range(hi - lo):
                x = x_a[n]
                y = y_a[n]
                z = z_a[n]
                a1 = px * x + py * y + pz * z
                a2 = x * (pxx * x + pxy * y + pxz * z) + y * (pyy * y + pyz * z) + pzz * z * z
                bxn = px + 2.0 * pxx * x + pxy * y + pxz * z
                byn = py + pxy * x + 2.0 * pyy * y + pyz * z
                bzn = pz + pxz * x + pyz * y + 2.0 * pzz * z
                gr = gu[n] * ir_a[n]
                rad = dgu[n] * (p0 + a1 + a2 - ga * gu[n]) - gr * (a1 + 2.0 * a2)
                fx_a[n] -= rad * x + gr * bxn
                fy_a[n] -= rad * y + gr * byn
                fz_a[n] -= rad * z + gr * bzn


@njit(cache=True, fastmath=_FLAGS, error_model="numpy")
def _centres(c0, c1, X, Y, Z, box, spec, sink_type, idx, ptr, n_species, max_row, radius2, angular2,
             rc, ron, rad_p, rad_src, rad_fn, fn_plan, fn_param, leg_eta, leg_cut, ang_zeta, ang_lam,
             grp_ptr, grp_cell, mom_p, mom_grp, mom_leg, mom_coef, A, Bq, q_idx, quadratic, c12, wall_rc, wall_ron,
             shared, store, H, Fbuf, phi_out):
    """Centres c0 <= i < c1 (sorted numbering): H[i], forces into Fbuf (N, 3), phi_out[i] if ``store``.

    Loops that start inside an array run over slices (indices from 0 need no negative-index
    wraparound, so they vectorize).
    """
    S = n_species
    P = A.shape[1]
    n_cut = rc.shape[0]
    n_rad = rad_p.shape[0]
    n_leg = leg_eta.shape[0]
    n_ang = ang_zeta.shape[0]
    n_q = q_idx.shape[0]
    inv_box = 1.0 / box
    max_pairs = max(1, max_row * (max_row - 1) // 2) + 8 * S * S
    # per-neighbour buffers (neighbours grouped by species: block[a] <= n < block[a + 1])
    nb = np.empty(max_row + 1, dtype=np.int64)  # + 1: the branch-free selection writes one past the last kept
    dx = np.empty(max_row + 1)
    dy = np.empty(max_row + 1)
    dz = np.empty(max_row + 1)
    lx = np.empty(max_row)  # every listed neighbour of one species
    ly = np.empty(max_row)
    lz = np.empty(max_row)
    l2 = np.empty(max_row)
    rr = np.empty(max_row)
    inv_r = np.empty(max_row)
    ex = np.empty(max_row)
    ey = np.empty(max_row)
    ez = np.empty(max_row)
    fx = np.empty(max_row)
    fy = np.empty(max_row)
    fz = np.empty(max_row)
    fs = np.empty(max_row)
    block = np.empty(S + 1, dtype=np.int64)
    inner = np.empty(S, dtype=np.int64)
    sw = np.empty((n_cut, max_row))
    dsw = np.empty((n_cut, max_row))
    g = np.empty((n_leg, max_row))
    dg = np.empty((n_leg, max_row))
    n_fn = fn_param.shape[0]
    fn_w = np.empty((n_fn, max_row))
    fn_v = np.empty((n_fn, max_row))
    fn_d = np.empty((n_fn, max_row))
    # per-pair buffers: the pairs {n1, n2} of the centre's neighbours come in runs (fixed n1,
    # consecutive n2 = run_n2 .. run_n2 + run_m - 1 at pair index run_k ..), runs grouped by species pair
    pair_ptr = np.empty(S * S + 1, dtype=np.int64)
    run_n1 = np.empty(max_row * S, dtype=np.int64)
    run_n2 = np.empty(max_row * S, dtype=np.int64)
    run_k = np.empty(max_row * S, dtype=np.int64)
    run_m = np.empty(max_row * S, dtype=np.int64)
    cs = np.empty(max_pairs)
    base = np.empty(max_pairs)
    n_fac = grp_cell.shape[2]
    kt = np.zeros((n_fac, max_pairs))  # rows n_ang.. stay zero: the padding of the factor blocks
    dkt = np.zeros((n_fac, max_pairs))
    g12 = np.empty((n_leg, max_pairs))
    h1 = np.empty((n_leg, max_pairs))
    h2 = np.empty((n_leg, max_pairs))
    ca = np.empty((n_leg, max_pairs))
    cd = np.empty((n_leg, max_pairs))
    al1 = np.empty(max_pairs)
    al2 = np.empty(max_pairs)
    be = np.empty(max_pairs)
    ang_k = np.empty(n_ang)
    cg = np.zeros((S * S, n_leg, n_fac))
    phi = np.empty(P)
    phi_q = np.empty(n_q)
    coef = np.empty(P)
    # moments: per species a and leg u, the G-weighted sums M of the inner neighbours' unit-vector monomials
    # (:data:`MOMENT_OF`) and sum G^2; for the forces, the partner sums P = sum_f c_f dS_m/dM_a (part) and the
    # weights of the left-out n1 = n2 (gam)
    n_mom = mom_p.shape[0]
    mom = np.empty((S, n_leg, MOMENTS))
    sum_g2 = np.empty((S, n_leg))
    part = np.empty((S, n_leg, MOMENTS))
    gam = np.empty((S, n_leg))
    for t in range(n_ang):
        ang_k[t] = 2.0 ** (1 - ang_zeta[t])
    for i in range(c0, c1):
        t_i = sink_type[i]
        s_i = spec[i]
        xi = X[i]
        yi = Y[i]
        zi = Z[i]
        # 1. neighbours within the largest cutoff, grouped by species, those within the angular
        #    cutoff first in each group (block[a] <= n < inner[a]): only they form angular pairs
        K = 0
        for a in range(S):
            block[a] = K
            q0 = ptr[i, a]
            n_listed = ptr[i, a + 1] - q0
            for jj in range(n_listed):
                j = idx[q0 + jj]
                ux = X[j] - xi
                uy = Y[j] - yi
                uz = Z[j] - zi
                ux -= box * np.rint(ux * inv_box)
                uy -= box * np.rint(uy * inv_box)
                uz -= box * np.rint(uz * inv_box)
                lx[jj] = ux
                ly[jj] = uy
                lz[jj] = uz
                l2[jj] = ux * ux + uy * uy + uz * uz
            # kept without branches: every candidate is written at K, which moves on only if it is kept
            for ring in range(2):
                lo2 = 0.0 if ring == 0 else angular2
                hi2 = angular2 if ring == 0 else radius2
                for jj in range(n_listed):
                    nb[K] = idx[q0 + jj]
                    dx[K] = lx[jj]
                    dy[K] = ly[jj]
                    dz[K] = lz[jj]
                    K += 1 if lo2 <= l2[jj] < hi2 else 0
                if ring == 0:
                    inner[a] = K
        block[S] = K
        for n in range(K):
            r2 = dx[n] * dx[n] + dy[n] * dy[n] + dz[n] * dz[n]
            inv = _inv_sqrt(r2)
            rr[n] = r2 * inv
            inv_r[n] = inv
            ex[n] = dx[n] * inv_r[n]
            ey[n] = dy[n] * inv_r[n]
            ez[n] = dz[n] * inv_r[n]
        h = 0.0
        fix = 0.0
        fiy = 0.0
        fiz = 0.0
        # the wall, a symmetric pair term: the centre's own row only
        for a in range(S):
            cw = c12[s_i, a]
            if cw > 0.0:
                for n in range(block[a], block[a + 1]):
                    inv6 = inv_r[n] * inv_r[n] * inv_r[n]
                    inv6 *= inv6
                    bare = cw * inv6 * inv6
                    s, ds = _quintic(rr[n], wall_rc, wall_ron)
                    h += bare * s if not shared else 0.5 * bare * s
                    dv = bare * (ds - 12.0 * s * inv_r[n])
                    fix += dv * ex[n]
                    fiy += dv * ey[n]
                    fiz += dv * ez[n]
        if t_i >= 0 or store:
            # 2. switches, angular legs G_u, radial terms (their r-derivatives kept for step 5)
            for c in range(n_cut):
                for n in range(K):
                    sw[c, n], dsw[c, n] = _quintic(rr[n], rc[c], ron[c])
            for u in range(n_leg):
                eta = leg_eta[u]
                c = leg_cut[u]
                for n in range(K):
                    e = _exp(-eta * rr[n] * rr[n])
                    g[u, n] = e * sw[c, n]
                    dg[u, n] = e * (dsw[c, n] - 2.0 * eta * rr[n] * sw[c, n])
            for p in range(P):
                phi[p] = 0.0
            for j in range(n_fn):  # over all neighbours (bases before the functions derived from them)
                c = fn_plan[j, 3]
                _radial(fn_plan[j, 0], fn_param[j], fn_plan[j, 2], rr[:K], inv_r[:K], sw[c, :K], dsw[c, :K],
                        fn_w[max(fn_plan[j, 1], 0), :K], fn_w[j, :K], fn_v[j, :K], fn_d[j, :K])
            for m in range(n_rad):
                vm = fn_v[rad_fn[m], block[rad_src[m]]:block[rad_src[m] + 1]]
                acc = 0.0
                for n in range(vm.shape[0]):
                    acc += vm[n]
                phi[rad_p[m]] += acc
            # 3a. angular features of small zeta through moments: S_m = sum_(|k| = m) weight_k M_a[k] M_b[k] over
            #     species a != b; for a = b each unordered pair once: (that - sum G^2) / 2 (c = 1 when n1 = n2)
            if n_mom > 0:
                _moment_sums(S, block, inner, ex, ey, ez, g, mom, sum_g2, mom_p, mom_grp, mom_leg, mom_coef, phi)
            # 3b. angular, pair by pair: the pair runs with cos theta and the leg products G(r1) G(r2), G'(r1) G(r2), G(r1) G'(r2)
            M = 0
            R = 0
            for a in range(S):
                for b in range(S):
                    pair_ptr[a * S + b] = M
                    if b < a or grp_ptr[a * S + b] == grp_ptr[a * S + b + 1]:
                        continue
                    for n1 in range(block[a], inner[a]):
                        n2 = n1 + 1 if b == a else block[b]
                        m = inner[b] - n2
                        if m <= 0:
                            continue
                        run_n1[R] = n1
                        run_n2[R] = n2
                        run_k[R] = M
                        run_m[R] = m
                        R += 1
                        x1 = ex[n1]
                        y1 = ey[n1]
                        z1 = ez[n1]
                        exs = ex[n2:n2 + m]
                        eys = ey[n2:n2 + m]
                        ezs = ez[n2:n2 + m]
                        css = cs[M:M + m]
                        for jj in range(m):
                            css[jj] = x1 * exs[jj] + y1 * eys[jj] + z1 * ezs[jj]
                        for u in range(n_leg):
                            g1 = g[u, n1]
                            dg1 = dg[u, n1]
                            gs = g[u, n2:n2 + m]
                            dgs = dg[u, n2:n2 + m]
                            g12s = g12[u, M:M + m]
                            h1s = h1[u, M:M + m]
                            h2s = h2[u, M:M + m]
                            for jj in range(m):
                                g12s[jj] = g1 * gs[jj]
                                h1s[jj] = dg1 * gs[jj]
                                h2s[jj] = g1 * dgs[jj]
                        M += m
                    while M % 8 != 0:  # whole 8-wide vectors per group: zero pairs (in no run) fill the last
                        cs[M] = 0.0
                        for u in range(n_leg):
                            g12[u, M] = 0.0
                            h1[u, M] = 0.0
                            h2[u, M] = 0.0
                        M += 1
            pair_ptr[S * S] = M
            # K_t(c) = 2^(1-zeta) (1 + lambda c)^zeta and K_t'(c), the power by squaring
            for t in range(n_ang):
                lam = ang_lam[t]
                pw = kt[t]
                for k in range(M):
                    base[k] = 1.0 + lam * cs[k]
                    pw[k] = ang_k[t]
                e = ang_zeta[t] - 1
                while e > 0:
                    if e & 1:
                        for k in range(M):
                            pw[k] *= base[k]
                    e >>= 1
                    if e > 0:
                        for k in range(M):
                            base[k] *= base[k]
                kd = ang_zeta[t] * lam
                dpw = dkt[t]
                for k in range(M):
                    dpw[k] = kd * pw[k]
                    pw[k] *= 1.0 + lam * cs[k]
            # phi of the grid cell (u, t) = sum over the group's pairs of K_t G_u G_u, FACTOR_BLOCK factors a pass
            for grp in range(S * S):
                k0 = pair_ptr[grp]
                k1 = pair_ptr[grp + 1]
                if k1 == k0:
                    continue
                for u in range(n_leg):
                    gu = g12[u, k0:k1]
                    for t in range(0, n_fac, FACTOR_BLOCK):
                        k_0 = kt[t, k0:k1]
                        k_1 = kt[t + 1, k0:k1]
                        k_2 = kt[t + 2, k0:k1]
                        k_3 = kt[t + 3, k0:k1]
                        s0 = 0.0
                        s1 = 0.0
                        s2 = 0.0
                        s3 = 0.0
                        for k in range(k1 - k0):
                            s0 += k_0[k] * gu[k]
                            s1 += k_1[k] * gu[k]
                            s2 += k_2[k] * gu[k]
                            s3 += k_3[k] * gu[k]
                        sums = (s0, s1, s2, s3)
                        for x in range(FACTOR_BLOCK):
                            p = grp_cell[grp, u, t + x]
                            if p >= 0:
                                phi[p] += sums[x]
            if store:
                for p in range(P):
                    phi_out[i, p] = phi[p]
        if t_i >= 0:
            # 4. c_i = A + B phi and H_i
            for p in range(P):
                coef[p] = A[t_i, p]
                h += A[t_i, p] * phi[p]
            if quadratic[t_i]:
                for qa in range(n_q):
                    phi_q[qa] = phi[q_idx[qa]]
                for qa in range(n_q):
                    row = Bq[t_i, qa]
                    acc = 0.0
                    for qb in range(n_q):
                        acc += row[qb] * phi_q[qb]
                    coef[q_idx[qa]] += acc
                    h += 0.5 * acc * phi_q[qa]
            # 5. contraction, radial: f_n = -sum_f c_f (w f_c)'(r) u_n
            for n in range(K):
                fs[n] = 0.0
            for m in range(n_rad):
                cm = coef[rad_p[m]]
                n0 = block[rad_src[m]]
                fsm = fs[n0:block[rad_src[m] + 1]]
                rdm = fn_d[rad_fn[m], n0:block[rad_src[m] + 1]]
                for n in range(fsm.shape[0]):
                    fsm[n] += cm * rdm[n]
            for n in range(K):
                fx[n] = -fs[n] * ex[n]
                fy[n] = -fs[n] * ey[n]
                fz[n] = -fs[n] * ez[n]
            # angular, moments: with P = sum_f c_f dS_m/dM_a (the partner's moments), per inner neighbour n of a
            # sum_f c_f dT_f/dq_n = sum_m (G' - m G / r) A_m u_n + (G / r) B - gam G G' u_n, where
            # A_m = sum_(|k| = m) P[k] e^k and B_x = sum_k P[k] k_x e^(k - 1_x) (d e_x / d q = (1 - e e) / r)
            if n_mom > 0:
                _moment_forces(S, block, inner, ex, ey, ez, inv_r, g, dg, mom, part, gam, mom_p, mom_grp, mom_leg,
                               mom_coef, coef, fx, fy, fz)
            # angular, pair by pair: per pair CA_u = sum_f c_f K_f(c), CD_u = sum_f c_f K_f'(c) over the features of leg u,
            # alpha1 = sum_u CA_u G_u'(r1) G_u(r2), alpha2 = sum_u CA_u G_u(r1) G_u'(r2), beta = sum_u CD_u G_u G_u;
            # then sum_f c_f dT_f/dq_n1 = (alpha1 - beta c / r1) u1 + (beta / r1) u2, and n2 likewise
            for grp in range(S * S):
                k0 = pair_ptr[grp]
                k1 = pair_ptr[grp + 1]
                if k1 == k0:
                    continue
                for u in range(n_leg):
                    for t in range(n_fac):
                        p = grp_cell[grp, u, t]
                        cg[grp, u, t] = coef[p] if p >= 0 else 0.0
                    cau = ca[u, k0:k1]
                    cdu = cd[u, k0:k1]
                    for t in range(0, n_fac, FACTOR_BLOCK):
                        c0 = cg[grp, u, t]
                        c1 = cg[grp, u, t + 1]
                        c2 = cg[grp, u, t + 2]
                        c3 = cg[grp, u, t + 3]
                        k_0 = kt[t, k0:k1]
                        k_1 = kt[t + 1, k0:k1]
                        k_2 = kt[t + 2, k0:k1]
                        k_3 = kt[t + 3, k0:k1]
                        d_0 = dkt[t, k0:k1]
                        d_1 = dkt[t + 1, k0:k1]
                        d_2 = dkt[t + 2, k0:k1]
                        d_3 = dkt[t + 3, k0:k1]
                        if t == 0:
                            for k in range(k1 - k0):
                                cau[k] = c0 * k_0[k] + c1 * k_1[k] + c2 * k_2[k] + c3 * k_3[k]
                                cdu[k] = c0 * d_0[k] + c1 * d_1[k] + c2 * d_2[k] + c3 * d_3[k]
                        else:
                            for k in range(k1 - k0):
                                cau[k] += c0 * k_0[k] + c1 * k_1[k] + c2 * k_2[k] + c3 * k_3[k]
                                cdu[k] += c0 * d_0[k] + c1 * d_1[k] + c2 * d_2[k] + c3 * d_3[k]
            for k in range(M):
                al1[k] = 0.0
                al2[k] = 0.0
                be[k] = 0.0
            for u in range(n_leg):
                for k in range(M):
                    al1[k] += ca[u, k] * h1[u, k]
                    al2[k] += ca[u, k] * h2[u, k]
                    be[k] += cd[u, k] * g12[u, k]
            for run in range(R):
                n1 = run_n1[run]
                n2 = run_n2[run]
                k0 = run_k[run]
                m = run_m[run]
                ir1 = inv_r[n1]
                x1 = ex[n1]
                y1 = ey[n1]
                z1 = ez[n1]
                sx = 0.0
                sy = 0.0
                sz = 0.0
                for jj in range(m):
                    k = k0 + jj
                    n = n2 + jj
                    a11 = al1[k] - be[k] * cs[k] * ir1
                    a12 = be[k] * ir1
                    a21 = be[k] * inv_r[n]
                    a22 = al2[k] - be[k] * cs[k] * inv_r[n]
                    sx += a11 * x1 + a12 * ex[n]
                    sy += a11 * y1 + a12 * ey[n]
                    sz += a11 * z1 + a12 * ez[n]
                    fx[n] -= a22 * ex[n] + a21 * x1
                    fy[n] -= a22 * ey[n] + a21 * y1
                    fz[n] -= a22 * ez[n] + a21 * z1
                fx[n1] -= sx
                fy[n1] -= sy
                fz[n1] -= sz
            # 6. the centre's reaction, and the neighbours' forces (shared)
            for n in range(K):
                fix -= fx[n]
                fiy -= fy[n]
                fiz -= fz[n]
                if shared:
                    j = nb[n]
                    Fbuf[j, 0] += fx[n]
                    Fbuf[j, 1] += fy[n]
                    Fbuf[j, 2] += fz[n]
        H[i] = h
        Fbuf[i, 0] += fix
        Fbuf[i, 1] += fiy
        Fbuf[i, 2] += fiz


@njit(cache=True, parallel=True)
def _kernel(X, Y, Z, box, spec, sink_type, idx, ptr, n_species, max_row, radius2, angular2,
            rc, ron, rad_p, rad_src, rad_fn, fn_plan, fn_param, leg_eta, leg_cut, ang_zeta, ang_lam,
            grp_ptr, grp_cell, mom_p, mom_grp, mom_leg, mom_coef, A, Bq, q_idx, quadratic, c12, wall_rc, wall_ron,
            shared, store, H, Fbuf, phi_out, F):
    """All centres in parallel chunks (one force buffer each), then F = sum of the buffers."""
    N = X.size
    n_chunks = Fbuf.shape[0]
    for chunk in prange(n_chunks):
        Fbuf[chunk, :, :] = 0.0
        _centres(chunk * N // n_chunks, (chunk + 1) * N // n_chunks, X, Y, Z, box, spec, sink_type, idx, ptr,
                 n_species, max_row, radius2, angular2, rc, ron, rad_p, rad_src, rad_fn, fn_plan, fn_param, leg_eta,
                 leg_cut, ang_zeta, ang_lam, grp_ptr, grp_cell, mom_p, mom_grp, mom_leg, mom_coef, A, Bq, q_idx,
                 quadratic, c12,
                 wall_rc, wall_ron, shared, store, H, Fbuf[chunk], phi_out)
    for j in prange(N):
        for x in range(3):
            acc = 0.0
            for chunk in range(n_chunks):
                acc += Fbuf[chunk, j, x]
            F[j, x] = acc


class DescriptorForces:
    """Loss values H (N,) and forces F (N, 3) of a :class:`DescriptorLoss`, compiled: the MD force call.

    Args:
        loss: the loss (own or shared form, wall included if it has one).
        symbols: (N,) species of the atoms (atoms of a species without a loss are sources only).
        box: cubic box side, angstrom (every cutoff <= box / 2).
        skin: neighbour-list skin, angstrom; the list is rebuilt only after an atom moved skin / 2.

    ``H, F = DescriptorForces(...)(positions)`` equals ``loss.evaluate(positions, box, symbols)``
    (H: own, each agent's loss; shared, its share of E = H.sum()).  The coefficients are copied at
    construction.
    """

    def __init__(self, loss: DescriptorLoss, symbols, box: float, skin: float = DEFAULT_SKIN):
        self.shared = loss.form == "shared"
        self.box = float(box)
        loss.descriptors.check_box(self.box)
        symbols = list(symbols)
        self.species = list(dict.fromkeys(list(loss.descriptors.species) + symbols))
        self.spec = np.array([self.species.index(s) for s in symbols], dtype=np.int64)
        self.encoded = EncodedDescriptors(loss.descriptors, self.species)
        S, P = len(self.species), len(loss.descriptors)
        self.sink_type = np.array([self.species.index(s) if s in loss.A else -1 for s in symbols], dtype=np.int64)
        self.A = np.zeros((S, P))
        B = np.zeros((S, P, P))
        for s in loss.A:
            self.A[self.species.index(s)] = loss.A[s]
            B[self.species.index(s)] = loss.B[s]
        self.q_idx = np.flatnonzero(np.any(B != 0, axis=(0, 1))).astype(np.int64)
        self.Bq = np.ascontiguousarray(B[:, self.q_idx][:, :, self.q_idx])
        self.quadratic = np.array([np.any(B[t]) for t in range(S)])
        wall = loss.wall
        if wall is not None:
            wall.check_box(self.box)
        self.c12 = wall.sigma12(self.species) if wall is not None else np.zeros((S, S))  # zero: no wall term
        self.wall_rc, self.wall_ron = _switch_params(wall.rc if wall is not None else 1.0)
        self.radius = max(loss.descriptors.rc_max, wall.rc if wall is not None else 0.0)
        self.angular = max((f.function.rc for f in loss.descriptors.features if f.angular), default=0.0)
        self.neighbors = NeighborList(self.radius, skin=skin)

    def _run(self, positions, store: bool):
        positions = np.asarray(positions, dtype=np.float64)
        N = len(positions)
        nl = self.neighbors
        nl.update(positions, self.box, self.spec, len(self.species))
        order = nl.order
        X, Y, Z = (np.ascontiguousarray(positions[order, x]) for x in range(3))
        P = self.A.shape[1]
        H = np.zeros(N)
        F = np.zeros((N, 3))
        n_chunks = max(1, min(N, CHUNKS))
        Fbuf = np.empty((n_chunks, N, 3))
        phi = np.zeros((N, P) if store else (1, P))
        _kernel(X, Y, Z, self.box, self.spec[order], self.sink_type[order], nl.indices, nl.pointers,
                *self._coefficients(), store, H, Fbuf, phi, F)
        out_H, out_F = np.empty(N), np.empty((N, 3))
        out_H[order], out_F[order] = H, F
        if store:
            out_phi = np.empty_like(phi)
            out_phi[order] = phi
            return out_H, out_F, out_phi
        return out_H, out_F, None

    def rebuild_neighbors(self, reference) -> None:
        """Build the neighbour list at ``reference`` positions (a checkpoint's)."""
        self.neighbors.build(reference, self.box, self.spec, len(self.species))

    def __call__(self, positions):
        """H (N,) eV and F (N, 3) eV/angstrom at ``positions`` (N, 3) angstrom."""
        H, F, _ = self._run(positions, store=False)
        return H, F

    def descriptors(self, positions) -> np.ndarray:
        """phi (N, P) of every atom, computed by the kernel (for checks against the numpy path)."""
        return self._run(positions, store=True)[2]

    def compiled(self, positions):
        """The force call for compiled code (:mod:`environment.fused`): ``(function, kernel, signature, args)``
        such that ``function(positions, H, F, kernel, args)`` writes what ``self(positions)`` returns into
        H (N,) and F (N, 3); ``kernel`` (:func:`_kernel`, passed as a function pointer of ``signature``)
        runs the machine code :meth:`__call__` runs.  The neighbour list is first brought up to date at
        ``positions``; ``args`` hold it as built then (see :meth:`environment.kernels.LossForces.compiled`).
        """
        positions = np.asarray(positions, dtype=np.float64)
        N = len(positions)
        nl = self.neighbors
        nl.update(positions, self.box, self.spec, len(self.species))
        return adapter_call(self, (nl.n_builds, N),
                            lambda: self._compiled_arguments(positions))

    def _coefficients(self) -> tuple:
        """:func:`_kernel`'s arguments from ``n_species`` to ``shared``: the loss and the list's longest row."""
        e = self.encoded
        return (len(self.species), max(1, self.neighbors.max_row), self.radius**2, self.angular**2, e.rc, e.ron,
                e.rad_p, e.rad_src, e.rad_fn, e.fn_plan, e.fn_param, e.leg_eta, e.leg_cut, e.ang_zeta, e.ang_lam,
                e.grp_ptr, e.grp_cell, e.mom_p, e.mom_grp, e.mom_leg, e.mom_coef, self.A, self.Bq, self.q_idx, self.quadratic, self.c12,
                self.wall_rc, self.wall_ron, self.shared)

    def _compiled_arguments(self, positions):
        """(function, kernel, kernel arguments as :meth:`__call__` passes them, args) of :meth:`compiled`."""
        N = len(positions)
        nl = self.neighbors
        order = nl.order
        P = self.A.shape[1]
        n_chunks = max(1, min(N, CHUNKS))
        coefficients = self._coefficients()
        args = (order, self.spec[order], self.sink_type[order], nl.indices, nl.pointers, self.box, coefficients,
                np.zeros(N), np.zeros((N, 3)), np.empty((n_chunks, N, 3)), np.zeros((1, P)))
        X = np.ascontiguousarray(positions[order, 0])
        kernel_arguments = (X, X, X, self.box, args[1], args[2], nl.indices, nl.pointers, *coefficients, False,
                            args[7], args[9], args[10], args[8])
        return _forces_into, _kernel, kernel_arguments, args


@njit(cache=True)
def _forces_into(positions, H, F, kernel, args):
    """H (N,) and F (N, 3) at ``positions`` (N, 3), written in place by ``kernel`` (:func:`_kernel`): what
    :meth:`DescriptorForces.__call__` computes, from compiled code, with the arguments of
    :meth:`DescriptorForces.compiled`."""
    order, spec, sink_type, idx, ptr, box, c, H_sorted, F_sorted, Fbuf, phi = args
    N = order.size
    X = positions[order, 0]
    Y = positions[order, 1]
    Z = positions[order, 2]
    H_sorted[:] = 0.0
    F_sorted[:] = 0.0
    kernel(X, Y, Z, box, spec, sink_type, idx, ptr, c[0], c[1], c[2], c[3], c[4], c[5], c[6], c[7], c[8], c[9],
           c[10], c[11], c[12], c[13], c[14], c[15], c[16], c[17], c[18], c[19], c[20], c[21], c[22], c[23], c[24],
           c[25], c[26], c[27], c[28], False, H_sorted, Fbuf, phi, F_sorted)
    for s in range(N):
        H[order[s]] = H_sorted[s]
        for x in range(3):
            F[order[s], x] = F_sorted[s, x]
