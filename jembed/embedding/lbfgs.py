"""The jitted L-BFGS loop of the Sammon solvers: the whole optimization inside one `lax.while_loop`.

`minimize(value_and_grad, x0, precond, ...)` is shared by `sammon.sammon` (all points free) and
`out_of_sample.embed_out_of_sample` (new points only); see the `sammon` module docstring for why L-BFGS.

Measured and not kept (issue 24): carrying the history's products with the gradient and the direction from trip to
trip (S y = S g' − S g, Y s = step · Y p from the Gram matrices) so that a trip reads the history twice instead of
seven times. It matched the two-loop recursion (tests/embedding/test_lbfgs.py) but took 3.70 ms a trip against 3.50
at N = 2000 × 128, history 6 (a quadratic in place of the stress, 2 CPU cores): the matrix-vector products it saves
cost less than the small operations it adds on XLA:CPU. Also measured and not kept (2026-12-06): the five products
of a trip with the history (S g, Y g, and the new pair's Y s, S y, Y y) as two matrix products S [s y g]ᵀ and
Y [s y g]ᵀ, each reading its buffer once: 3.0-3.3 ms a trip against 3.35-3.66 on the quadratic, but nothing the
Sammon solve could show (15-18 ms a trip on the shared machine either way), and its other rounding moved the
benchmark's iteration count from 65 to 83 (seeds 0-4: 83, 47, 96, 32, 83 against 65, 91, 64, 64, 86).
"""

from typing import Callable, NamedTuple

import jax
from jax import lax
import jax.numpy as jnp


class _State(NamedTuple):
  it: jax.Array  # accepted iterations so far; -1 before the start has been evaluated
  k: jax.Array  # (s, y) pairs stored so far
  x: jax.Array
  e: jax.Array
  g: jax.Array
  p: jax.Array  # search direction from x
  slope: jax.Array  # g · p
  step: jax.Array  # trial point x + step · p
  halvings: jax.Array
  s_hist: jax.Array  # float[m, x.size]: flat, so the in-place update and the products share one buffer
  y_hist: jax.Array
  sy: jax.Array  # float[m, m] s_a · y_b over the history buffer
  yy: jax.Array  # float[m, m] y_a · y_b
  curve: jax.Array
  done: jax.Array
  stop: jax.Array  # int32: why the loop ended (`STOP_REASONS`); 0 while it runs


# Why `minimize` stopped, in the order its tests are made (MATLAB mdscale's order, then the safeguards).
STOP_REASONS = (
    "running",
    "value below value_tol",
    "gradient below grad_tol",
    "change below tol",
    "step below step_tol",
    "max_iter",
    "no descent step (halvings exhausted)",
)


class Minimized(NamedTuple):
  """What `minimize` returns.

  Attributes:
    x: the last accepted point.
    value: the value there.
    curve: float32[max_iter + 1]: [0] at x0, [t] after iteration t, NaN past the end.
    it: int32 iterations run.
    stop: int32 index into `STOP_REASONS`.
  """

  x: jax.Array
  value: jax.Array
  curve: jax.Array
  it: jax.Array
  stop: jax.Array


def _lbfgs_direction(g, s_hist, y_hist, sy, yy, k, precond):
  """−H g for the L-BFGS inverse Hessian H in its compact form (Byrd, Nocedal & Schnabel 1994, eq. 3.1).

  H = γI + [S γY] [[R⁻ᵀ(D + γYᵀY)R⁻¹, −R⁻ᵀ], [−R⁻¹, 0]] [Sᵀ; γYᵀ] with R = triu(SᵀY) over the stored pairs in
  chronological order and D its diagonal. It equals the two-loop recursion but costs four matrix-vector products with
  the history (given the Gram matrices sy = SᵀY, yy = YᵀY in buffer order, kept up to date by the caller) instead of
  2m dependent steps: faster on XLA:CPU and cheaper to compile. −precond · g while there is no history.
  """
  m = s_hist.shape[0]
  used = jnp.minimum(k, m)
  order = (k - used + jnp.arange(m)) % m  # buffer slot of the i-th oldest pair (i < used)
  valid = jnp.arange(m) < used
  both = valid[:, None] & valid[None, :]
  sy = jnp.where(both, sy[order][:, order], 0.0)
  yy = jnp.where(both, yy[order][:, order], 0.0)
  sg = jnp.where(valid, (s_hist @ g.reshape(-1))[order], 0.0)
  yg = jnp.where(valid, (y_hist @ g.reshape(-1))[order], 0.0)
  r_mat = jnp.triu(sy) + jnp.diag(jnp.where(valid, 0.0, 1.0))  # identity on the unused slots keeps it invertible
  last = jnp.maximum(used - 1, 0)
  gamma = sy[last, last] / jnp.where(k > 0, yy[last, last], 1.0)
  u = jax.scipy.linalg.solve_triangular(r_mat, sg, lower=False)
  v = jax.scipy.linalg.solve_triangular(r_mat, jnp.diag(sy) * u + gamma * (yy @ u - yg), lower=False, trans=1)
  coef_s = jnp.zeros(m, g.dtype).at[order].add(jnp.where(valid, v, 0.0))
  coef_y = jnp.zeros(m, g.dtype).at[order].add(jnp.where(valid, -gamma * u, 0.0))
  hg = gamma * g + (coef_s @ s_hist + coef_y @ y_hist).reshape(g.shape)
  return -jnp.where(k > 0, hg, precond * g)


def _start(x0: jax.Array, history: int, max_iter: int) -> _State:
  """The loop's state before the start has been evaluated (it = -1, an empty history)."""
  hist = jnp.zeros((history, x0.size), x0.dtype)
  zero = jnp.zeros((), x0.dtype)
  square = jnp.zeros((history, history), x0.dtype)
  return _State(
      jnp.int32(-1),
      jnp.int32(0),
      x0,
      jnp.asarray(jnp.inf, x0.dtype),
      jnp.zeros_like(x0),
      jnp.zeros_like(x0),
      zero,
      zero,
      jnp.int32(0),
      hist,
      hist,
      square,
      square,
      jnp.full(max_iter + 1, jnp.nan, jnp.float32),
      jnp.bool_(False),
      jnp.int32(0),
  )


def _store_pair(st: _State, g_t: jax.Array, accepted: jax.Array):
  """(s_hist, y_hist, sy, yy, k) with the step's curvature pair (s, y) = (step · p, g_t − g) stored in slot k mod m
  when the step was `accepted` and s · y is positive, the Gram matrices updated to match."""
  s, yv = st.step * st.p, g_t - st.g
  store = accepted & (jnp.vdot(s, yv) > 1e-10 * jnp.vdot(yv, yv))
  j = st.k % st.s_hist.shape[0]
  s, yv = s.reshape(-1), yv.reshape(-1)
  s_hist = st.s_hist.at[j].set(jnp.where(store, s, st.s_hist[j]))
  y_hist = st.y_hist.at[j].set(jnp.where(store, yv, st.y_hist[j]))
  y_dot_y = y_hist @ yv
  sy_mat = jnp.where(store, st.sy.at[j, :].set(y_hist @ s).at[:, j].set(s_hist @ yv), st.sy)
  yy_mat = jnp.where(store, st.yy.at[j, :].set(y_dot_y).at[:, j].set(y_dot_y), st.yy)
  return s_hist, y_hist, sy_mat, yy_mat, st.k + store.astype(jnp.int32)


def _stop_reason(st: _State, accept, e_t, g_t, it, stuck, tols) -> jax.Array:
  """int32 index into `STOP_REASONS` (0: go on) after a trip whose trial point had value e_t and gradient g_t.

  MATLAB mdscale's tests, in its order, on every accepted point (the start included, where there is no change or step
  yet): value < value_tol; |g| < grad_tol · value; value change <= tol · value; |step| < step_tol · |x|. Then the
  iteration cap and the line search's safeguard. A norm test whose tolerance is the constant 0 cannot hold and is
  not traced, so the gain-only rule (and out-of-sample placement) reads x no more often than before."""
  value_tol, grad_tol, tol, step_tol, max_iter = tols
  started = st.it >= 0
  off = lambda t: isinstance(t, (int, float)) and t == 0  # pylint: disable=unnecessary-lambda-assignment
  norm = lambda v: jnp.sqrt(jnp.vdot(v, v))  # pylint: disable=unnecessary-lambda-assignment
  never = jnp.bool_(False)
  small_grad = never if off(grad_tol) else accept & (norm(g_t) < grad_tol * e_t)
  x_t = st.x + st.step * st.p
  short_step = never if off(step_tol) else accept & started & (jnp.abs(st.step) * norm(st.p) < step_tol * norm(x_t))
  small_gain = accept & started & (st.e - e_t <= tol * e_t)
  tests = jnp.stack([accept & (e_t < value_tol), small_grad, small_gain, short_step, it >= max_iter, stuck])
  return jnp.where(jnp.any(tests), jnp.argmax(tests).astype(jnp.int32) + 1, 0)  # the first test that holds


def _trip(st: _State, e_t, g_t, precond, *, c1: float, tols, method: str, max_halvings: int):
  """The state after one trip, given the value e_t and gradient g_t at its trial point x + step · p."""
  started = st.it >= 0
  accept = (e_t <= st.e + c1 * st.step * st.slope) | ~started
  # Accepted: store the curvature pair (when positive) and take the next direction from the new point.
  s_hist, y_hist, sy_mat, yy_mat, k = _store_pair(st, g_t, accept & started)
  if method == "lbfgs":
    p = _lbfgs_direction(g_t, s_hist, y_hist, sy_mat, yy_mat, k, precond)
  else:
    p = -precond * g_t
  slope = jnp.vdot(g_t, p)
  descent = slope < 0  # else restart from the preconditioned gradient with no history
  p = jnp.where(descent, p, -precond * g_t)
  slope = jnp.where(descent, slope, -jnp.vdot(g_t, precond * g_t))
  it = jnp.where(accept, st.it + 1, st.it)
  stuck = ~accept & (st.halvings + 1 >= max_halvings)
  stop = _stop_reason(st, accept, e_t, g_t, it, stuck, tols)
  pick = lambda new, old: jnp.where(accept, new, old)  # pylint: disable=unnecessary-lambda-assignment
  at = jnp.maximum(it, 0)
  return _State(
      it,
      pick(jnp.where(descent, k, 0), st.k),
      pick(st.x + st.step * st.p, st.x),
      pick(e_t, st.e),
      pick(g_t, st.g),
      pick(p, st.p),
      pick(slope, st.slope),
      pick(jnp.ones_like(st.step), 0.5 * st.step),
      pick(0, st.halvings + 1),
      s_hist,
      y_hist,
      sy_mat,
      yy_mat,
      st.curve.at[at].set(jnp.where(accept, e_t.astype(st.curve.dtype), st.curve[at])),
      stop > 0,
      stop,
  )


def minimize(
    value_and_grad: Callable,
    x0: jax.Array,
    precond: jax.Array,
    *,
    max_iter: int,
    tol: float,
    history: int = 10,
    method: str = "lbfgs",
    max_halvings: int = 30,
    value_tol: float = 0.0,
    grad_tol: float = 0.0,
    step_tol: float = 0.0,
) -> Minimized:
  """Minimizes a smooth function inside one `lax.while_loop`; call it under jit.

  Each trip evaluates one trial point: the start, a full step (accepted when it satisfies Armijo's condition, c1 =
  1e-4; for 'majorize' when it does not increase the value) or, after a rejection, the step halved.

  Args:
    value_and_grad: x -> (scalar value, gradient like x); traced once.
    x0: start.
    precond: broadcastable to x: the first step is −precond · g (and every step for method='majorize').
    max_iter: iteration cap.
    tol: stop when an iteration lowers the value by at most tol · value.
    history: L-BFGS memory.
    method: 'lbfgs' or 'majorize'.
    max_halvings: rejected halvings in a row that end the loop.
    value_tol: stop at a point whose value is below it (0: never, for a value that cannot be negative).
    grad_tol: stop at a point whose gradient norm is below grad_tol · value.
    step_tol: stop after a step shorter than step_tol · |x| (Euclidean norms over all of x).

  Returns:
    `Minimized` (x, value, curve, iterations run, the stop reason's index into `STOP_REASONS`).
  """
  rules = dict(c1=1e-4 if method == "lbfgs" else 0.0, method=method, max_halvings=max_halvings)
  tols = (value_tol, grad_tol, tol, step_tol, max_iter)

  def body(st: _State) -> _State:
    return _trip(st, *value_and_grad(st.x + st.step * st.p), precond, **rules, tols=tols)

  st = lax.while_loop(lambda st: ~st.done, body, _start(x0, history, max_iter))
  return Minimized(st.x, st.e, st.curve, st.it, st.stop)
