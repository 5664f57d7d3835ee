"""Multi-process JAX: the one start-up every launcher shares, and the few helpers that depend on the process layout.

JAX's multi-controller runtime runs one Python process per host (or per GPU); each sees every device of the job in
`jax.devices()` and feeds its own ones (`jax.local_devices()`). `initialize` joins this process to the others through
`jax.distributed.initialize`, with its arguments either

* detected from the cluster's environment (Cloud TPU, Slurm, Open MPI, Kubernetes, mpi4py: what JAX detects), or
* given explicitly (`coordinator_address='HOST:PORT', num_processes=N, process_id=I`), for any other launcher
  (including N processes on one machine, as the tests do).

A failure is a `DistributedError` that names the cause: a job that asked for several processes never silently trains
alone (N processes each training its own model into one workdir).

On CPUs the processes' collectives need an implementation (`jax_cpu_collectives_implementation`: gloo, in jaxlib and
jax 0.10's default); `initialize` makes sure one is set. GPUs and TPUs bring their own.

Writes that must happen once (metrics, pictures, JSON summaries) check `is_main()`; orbax checkpoints are written by
every process together (each its own shards, process 0 the metadata).
"""

import dataclasses

from absl import logging
import jax
from jax.experimental import multihost_utils
import numpy as np


class DistributedError(RuntimeError):
  """The processes could not be joined (the message says why and what to set)."""


@dataclasses.dataclass(frozen=True)
class Settings:
  """How to start. All empty/zero/-1 (the default) with `multihost=False`: one process, nothing to join.

  Attributes:
    multihost: join the other processes of a job (auto-detected from the cluster when no address is given).
    coordinator_address: 'HOST:PORT' of process 0's coordinator (any free port; every process gives the same).
    num_processes: N, the job's process count.
    process_id: I in [0, N), this process.
    timeout_s: seconds to wait for all processes to join.
  """

  multihost: bool = False
  coordinator_address: str = ""
  num_processes: int = 0
  process_id: int = -1
  timeout_s: int = 300

  @property
  def explicit(self) -> bool:
    return bool(self.coordinator_address or self.num_processes or self.process_id >= 0)


def initialize(settings: Settings) -> None:
  """Joins this process to the job's others (see the module docstring); a no-op for a single-process run.

  Must run before anything touches the devices (`jax.devices()`, any computation).

  Raises:
    DistributedError: joining failed, or the explicit settings are incomplete or inconsistent.
  """
  if not (settings.multihost or settings.explicit):
    return
  kwargs = {}
  if settings.explicit:
    missing = [
        name
        for name, given in (
            ("--coordinator_address", settings.coordinator_address),
            ("--num_processes", settings.num_processes),
            ("--process_id", settings.process_id >= 0),
        )
        if not given
    ]
    if missing:
      raise DistributedError(
          f"explicit multi-process start needs --coordinator_address=HOST:PORT, "
          f"--num_processes=N and --process_id=I together; missing {', '.join(missing)}"
      )
    if not 0 <= settings.process_id < settings.num_processes:
      raise DistributedError(
          f"--process_id={settings.process_id} is not in [0, --num_processes=" f"{settings.num_processes})"
      )
    kwargs = dict(
        coordinator_address=settings.coordinator_address,
        num_processes=settings.num_processes,
        process_id=settings.process_id,
    )
  if getattr(jax.config, "jax_cpu_collectives_implementation", "gloo") in (None, "", "none"):
    # Without one, CPU devices of different processes cannot take part in one collective (jax 0.10 defaults to
    # gloo; an older default or a user's 'none' is overridden; GPUs and TPUs ignore it).
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
  try:
    jax.distributed.initialize(initialization_timeout=int(settings.timeout_s), **kwargs)
  except Exception as e:  # pylint: disable=broad-except  (JAX raises ValueError, RuntimeError or XlaRuntimeError)
    how = (
        f"coordinator {settings.coordinator_address}, process {settings.process_id} of {settings.num_processes}"
        if kwargs
        else "no cluster environment detected (Cloud TPU, Slurm, Open MPI, Kubernetes)"
    )
    cause = str(e).strip().splitlines()[0][:300] if str(e).strip() else type(e).__name__
    raise DistributedError(
        f"multi-process start failed ({how}): {cause}. Give --coordinator_address=HOST:PORT "
        "--num_processes=N --process_id=I, or run without --multihost on one host"
    ) from None
  logging.info(
      "joined %d processes: this is process %d with %d of %d devices",
      jax.process_count(),
      jax.process_index(),
      jax.local_device_count(),
      jax.device_count(),
  )


def is_main() -> bool:
  """True in the one process that writes what must be written once (metrics, pictures, summaries)."""
  return jax.process_index() == 0


def main_says(value: bool) -> bool:
  """Process 0's `value`, in every process (a collective: every process must call it; a no-op with one process)."""
  if jax.process_count() == 1:
    return value
  return bool(multihost_utils.broadcast_one_to_all(np.int32(value)))


def barrier(name: str) -> None:
  """Waits until every process reaches the barrier `name` (a no-op with one process)."""
  if jax.process_count() > 1:
    multihost_utils.sync_global_devices(name)


def shutdown() -> None:
  """Leaves the job cleanly (a no-op unless `initialize` joined one)."""
  if jax.process_count() > 1:
    jax.distributed.shutdown()
