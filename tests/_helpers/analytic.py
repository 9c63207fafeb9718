"""Series solutions of dθ/dt = D ∇²θ in a disk with a prescribed outward surface flux.

Used to validate the solver with constant D. ``q_mean`` is the mean outward flux in
occupancy·µm/s; the flux around the perimeter is ``q_mean · w(φ) / <w>``, with one
blocked arc (centre φ0, fraction f, ratio η) or none.
"""

import numpy as np
from scipy.special import jn_zeros, jnp_zeros, jv


def uniform_flux(r, t, *, R, D, q, n_terms=80):
    """θ - θ0 for a uniform outward flux q (roots of J1)."""
    alpha = jn_zeros(1, n_terms)
    steady = -2 * q * t / R - q / (2 * D * R) * (r**2 - R**2 / 2)
    c = 2 * q * R / (D * alpha**2 * jv(0, alpha))
    series = np.sum(
        c[:, None] * jv(0, np.outer(alpha, r / R)) * np.exp(-(alpha**2) * D * t / R**2)[:, None],
        axis=0,
    )
    return steady + series


def blocked_arc(r, phi, t, *, R, D, q_mean, center_rad, fraction, eta, m_max=400, n_terms=40):
    """θ - θ0 for one blocked arc (Fourier modes cos m(φ-φ0), roots of J_m')."""
    mean_w = 1 - fraction * (1 - eta)
    out = uniform_flux(r, t, R=R, D=D, q=q_mean)
    tau = D * t / R**2
    for m in range(1, m_max + 1):
        w_m = 2 * (eta - 1) * np.sin(m * np.pi * fraction) / (m * np.pi)
        q_m = q_mean * w_m / mean_w
        if q_m == 0:
            continue
        A = -q_m * R ** (1 - m) / (D * m)
        u = A * r**m
        if m < 60:  # higher modes' transients have decayed (beta > m, tau >= 0.05)
            beta = jnp_zeros(m, n_terms)
            keep = beta**2 * tau < 200
            beta = beta[keep]
            c = -2 * A * R**m * jv(m + 1, beta) / (beta * (1 - m**2 / beta**2) * jv(m, beta) ** 2)
            u = u + np.sum(
                c[:, None] * jv(m, np.outer(beta, r / R)) * np.exp(-(beta**2) * tau)[:, None],
                axis=0,
            )
        out = out + u * np.cos(m * (phi - center_rad))
    return out
