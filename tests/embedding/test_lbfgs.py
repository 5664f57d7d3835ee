"""`lbfgs.minimize` against a textbook L-BFGS in float64 numpy (the two-loop recursion, every product recomputed from
the stored pairs), and its minimum against scipy's."""

import jax
import jax.numpy as jnp
import numpy as np
import scipy.optimize

from jembed.embedding import lbfgs


def _two_loop(g, pairs):
  """−H g by Nocedal & Wright's Algorithm 7.4 over pairs [(s, y), ...] oldest first, H₀ = (s·y / y·y) of the newest."""
  q, alphas = g.copy(), []
  for s, y in reversed(pairs):
    a = s @ q / (s @ y)
    alphas.append(a)
    q -= a * y
  s, y = pairs[-1]
  r = (s @ y) / (y @ y) * q
  for (s, y), a in zip(pairs, reversed(alphas)):
    r += (a - y @ r / (s @ y)) * s
  return -r


def _reference(fun, x0, precond, history, max_iter):
  """The loop `minimize` documents, in float64: first step −precond · g, Armijo (c1 = 1e-4) with halving, pairs kept
  when s·y > 1e-10 y·y, the last `history` of them. Returns the accepted points."""
  x, (e, g) = x0, fun(x0)
  pairs, points = [], [x0]
  p = -precond * g
  for _ in range(max_iter):
    step = 1.0
    while True:
      x_t = x + step * p
      e_t, g_t = fun(x_t)
      if e_t <= e + 1e-4 * step * (g @ p):
        break
      step *= 0.5
    s, y = x_t - x, g_t - g
    if s @ y > 1e-10 * (y @ y):
      pairs = (pairs + [(s, y)])[-history:]
    x, e, g = x_t, e_t, g_t
    points.append(x)
    p = _two_loop(g, pairs) if pairs else -precond * g
    if g @ p >= 0:
      pairs, p = [], -precond * g
  return points


def _rosenbrock_like(a):
  """A smooth non-quadratic test function: sum of a-scaled Rosenbrock terms plus a quartic (float64 numpy and jnp)."""

  def value(x, lib):
    return lib.sum(a[:-1] * (x[1:] - x[:-1] ** 2) ** 2 + (1 - x[:-1]) ** 2) + 0.01 * lib.sum(x**4)

  def numpy_fun(x):  # value and analytic gradient in float64, independent of jax's autodiff
    r = x[1:] - x[:-1] ** 2
    grad = 0.04 * x**3
    grad[:-1] += -4.0 * a[:-1] * x[:-1] * r - 2.0 * (1 - x[:-1])
    grad[1:] += 2.0 * a[:-1] * r
    return float(value(x, np)), grad

  return value, numpy_fun


def test_iterates_follow_the_two_loop_recursion():
  jax.config.update("jax_enable_x64", True)
  try:
    rng = np.random.default_rng(0)
    n = 40
    a = rng.uniform(0.5, 2.0, n)
    value, numpy_fun = _rosenbrock_like(a)
    x0 = rng.uniform(-1.0, 1.0, n)
    precond = 0.05
    for history in (3, 6):
      expected = _reference(numpy_fun, x0, precond, history, max_iter=12)
      for max_iter in (4, 8, 12):
        fun = jax.jit(
            lambda x: lbfgs.minimize(  # pylint: disable=cell-var-from-loop
                jax.value_and_grad(lambda z: value(z, jnp)),
                x,
                jnp.float64(precond),
                max_iter=max_iter,
                tol=0.0,
                history=history,
            )
        )
        x, _, _, it, _ = fun(jnp.asarray(x0))
        assert int(it) == max_iter
        np.testing.assert_allclose(np.asarray(x), expected[max_iter], rtol=1e-9, atol=1e-9)
  finally:
    jax.config.update("jax_enable_x64", False)


def test_minimum_matches_scipy():
  rng = np.random.default_rng(1)
  n = 30
  a = rng.uniform(0.5, 2.0, n)
  value, numpy_fun = _rosenbrock_like(a)
  x0 = rng.uniform(-1.0, 1.0, n).astype(np.float32)
  ref = scipy.optimize.minimize(numpy_fun, x0.astype(np.float64), jac=True, method="L-BFGS-B", tol=1e-14)
  x, e, curve, it, _ = jax.jit(
      lambda x: lbfgs.minimize(
          jax.value_and_grad(lambda z: value(z, jnp)), x, jnp.float32(0.05), max_iter=500, tol=1e-7, history=6
      )
  )(jnp.asarray(x0))
  assert 0 < int(it) < 500
  assert np.all(np.diff(np.asarray(curve)[: int(it) + 1]) <= 0)  # Armijo: every accepted step lowers the value
  np.testing.assert_allclose(float(e), ref.fun, rtol=1e-4)
  np.testing.assert_allclose(np.asarray(x), ref.x, atol=2e-3)


def test_gradient_test_stops_at_the_first_small_gradient():
  """grad_tol (mdscale's relative gradient test): the loop ends at the first iterate with |g| < grad_tol · value, found
  here by numpy on the iterates of solves capped one iteration apart (the same program, so the same path)."""
  a = np.linspace(1.0, 30.0, 50).astype(np.float32)
  x0 = np.ones(50, np.float32)

  def value_and_grad(x):
    return 0.5 * jnp.sum(a * x * x) + 1.0, a * x

  def solve(max_iter, grad_tol):
    return jax.jit(
        lambda x: lbfgs.minimize(value_and_grad, x, jnp.float32(0.05), max_iter=max_iter, tol=0.0, grad_tol=grad_tol)
    )(jnp.asarray(x0))

  res = solve(200, 1e-3)
  assert lbfgs.STOP_REASONS[int(res.stop)] == "gradient below grad_tol"
  k = int(res.it)

  def small(x):
    x = np.asarray(x, np.float64)
    return np.linalg.norm(a * x) < 1e-3 * (0.5 * np.sum(a * x * x) + 1.0)

  at = solve(k, 0.0).x
  np.testing.assert_array_equal(np.asarray(at), np.asarray(res.x))
  assert small(at) and not small(solve(k - 1, 0.0).x)
