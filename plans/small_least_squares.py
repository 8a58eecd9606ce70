"""Levenberg-Marquardt for many small, bounded least-squares problems at once.

An oxidation analysis fits a few growth laws to each of some twenty composition rows, and a
coverage test repeats that for hundreds of simulated campaigns. scipy's ``least_squares``
costs milliseconds per call in set-up alone, so here every problem of a batch takes its
damped Gauss-Newton step together, as numpy array operations (each problem keeps its own
damping). Bounds are enforced by clipping. Problems have a few to a few tens of
parameters; the tests check the result against scipy.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import ParamSpec, TypeVar

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

FloatArray = NDArray[np.float64]
Residuals = Callable[[FloatArray], FloatArray]
"""Residuals (batch, m) as a function of parameters (batch, p)."""
P = ParamSpec("P")
T = TypeVar("T")


def one_blas_thread(fn: Callable[P, T]) -> Callable[P, T]:
    """Run ``fn`` with the BLAS library on one thread.

    Stacks of small matrices gain nothing from BLAS threads, and on a shared, loaded machine
    OpenBLAS's spinning threads made a batch of Cholesky factorisations 40-60 times slower
    (measured: 20 of 180 x 180, 15 ms on one thread, 0.9 s on two).
    """

    @functools.wraps(fn)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> T:
        with threadpool_limits(limits=1, user_api="blas"):
            return fn(*args, **kwargs)

    return wrapper


def batched_matvec(a: FloatArray, x: FloatArray) -> FloatArray:
    """Return ``a @ x`` for stacks: a (batch, m, n), x (batch, n) -> (batch, m)."""
    out: FloatArray = (a @ x[:, :, None])[:, :, 0]
    return out


def numeric_jacobian(fn: Residuals, theta: FloatArray, f0: FloatArray) -> FloatArray:
    """Return d fn / d theta (batch, m, p) by forward differences at ``theta`` (batch, p)."""
    jac = np.empty((*f0.shape, theta.shape[1]))
    for i in range(theta.shape[1]):
        h = 1e-7 * np.maximum(1.0, np.abs(theta[:, i]))
        t = theta.copy()
        t[:, i] += h
        jac[:, :, i] = (fn(t) - f0) / h[:, None]
    return jac


def levenberg_marquardt(
    fn: Residuals,
    theta0: FloatArray,
    lower: FloatArray,
    upper: FloatArray,
    *,
    jacobian: Callable[[FloatArray, FloatArray], FloatArray] | None = None,
    max_iter: int = 60,
    tol: float = 1e-8,
) -> tuple[FloatArray, FloatArray]:
    """Minimise ``sum(fn(theta)**2, axis=1)`` for every problem of a batch within bounds.

    Parameters
    ----------
    fn
        Residuals (batch, m) of parameters (batch, p).
    theta0
        Starting parameters (batch, p), clipped into the bounds.
    lower, upper
        Bounds (p,) or (batch, p).
    jacobian
        ``jacobian(theta, residuals)`` (batch, m, p); forward differences when omitted.
    max_iter, tol
        At most this many steps; a problem stops when its accepted step lowers the cost by
        less than ``tol`` relative, or its damping has grown beyond use.

    Returns
    -------
    theta, jacobian
        The solutions (batch, p) and the Jacobian of ``fn`` there (batch, m, p).
    """
    theta = np.clip(np.asarray(theta0, float), lower, upper)
    r = fn(theta)
    cost = np.einsum("bm,bm->b", r, r)
    lam = np.full(theta.shape[0], 1e-3)
    active = np.ones(theta.shape[0], bool)
    jac_fn = jacobian or (lambda th, res: numeric_jacobian(fn, th, res))
    jac = jac_fn(theta, r)
    eye = np.eye(theta.shape[1])
    for _ in range(max_iter):
        if not active.any():
            break
        a = np.swapaxes(jac, 1, 2) @ jac
        g = batched_matvec(np.swapaxes(jac, 1, 2), r)
        diag = np.einsum("bpp->bp", a).copy()
        diag[diag <= 0] = 1.0
        accept = np.zeros_like(active)
        drop = np.zeros(theta.shape[0])
        for _ in range(8):  # raise the damping of the problems whose step failed
            todo = active & ~accept
            if not todo.any():
                break
            damped = a + lam[:, None, None] * diag[:, :, None] * eye
            try:
                step = np.linalg.solve(damped, -g[:, :, None])[:, :, 0]
            except np.linalg.LinAlgError:
                step = -g / (lam[:, None] * diag)
            trial = np.clip(theta + np.where(todo[:, None], step, 0.0), lower, upper)
            r_new = fn(trial)
            new_cost = np.einsum("bm,bm->b", r_new, r_new)
            ok = todo & np.isfinite(new_cost) & (new_cost <= cost)
            drop = np.where(ok, (cost - new_cost) / np.maximum(cost, 1e-300), drop)
            theta = np.where(ok[:, None], trial, theta)
            r = np.where(ok[:, None], r_new, r)
            cost = np.where(ok, new_cost, cost)
            lam = np.where(ok, np.maximum(lam / 10, 1e-12), np.where(todo, lam * 10, lam))
            accept |= ok
        active &= ~(accept & (drop < tol)) & (lam < 1e12)
        if accept.any():
            jac = np.where(accept[:, None, None], jac_fn(theta, r), jac)
    return theta, jac


__all__ = ["batched_matvec", "levenberg_marquardt", "numeric_jacobian", "one_blas_thread"]
