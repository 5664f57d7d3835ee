"""What a training run reports: `workdir/metrics.jsonl`, a progress bar, the non-finite check and `loss_curve.png`.

metrics.jsonl holds one JSON object a line, each with its `step`:
  train lines (every `train.log_every` steps, means over the steps since the last line): train_loss, train_<head>_loss,
    grad_norm, param_norm, lr, steps_per_s, images_per_s (wall clock, input pipeline included, compile excluded)
  validation lines: val_loss, val_<head>_loss, val_top1, val_top5 (image->shape retrieval among all shapes)
Only process 0 writes.
"""

import json
import os
import time

from absl import logging
import jax
import matplotlib
import numpy as np
import tqdm

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # pylint: disable=g-import-not-at-top,wrong-import-position

from jembed.workdir import paths


class MetricWriter:
  """Appends JSON lines to `workdir/metrics.jsonl`; a resumed run first drops the lines past its checkpoint."""

  def __init__(self, workdir: str, resume_step: int = 0):
    self.path = paths.metrics(workdir)
    self._active = jax.process_index() == 0
    if self._active and os.path.exists(self.path):
      kept = [r for r in read_metrics(self.path) if r["step"] <= resume_step]
      with open(self.path, "w") as f:
        f.writelines(json.dumps(r) + "\n" for r in kept)

  def write(self, record: dict) -> None:
    if self._active:
      with open(self.path, "a") as f:
        f.write(json.dumps(record) + "\n")


def read_metrics(path: str) -> list[dict]:
  """The records of a metrics.jsonl. A torn last line (a kill mid-write) is skipped; so is any other line that is not
  a UTF-8 JSON record with a step (damaged bytes), with a warning naming the file and the line."""
  with open(path, "rb") as f:
    lines = f.read().split(b"\n")
  records = []
  for number, line in enumerate(lines, 1):
    if not line.strip():
      continue
    try:
      record = json.loads(line.decode("utf-8"))
      if isinstance(record, dict) and isinstance(record.get("step"), int):
        records.append(record)
        continue
    except ValueError:  # UnicodeDecodeError, JSONDecodeError
      pass
    if number < len(lines):  # not the torn last line
      logging.warning("%s line %d is damaged (not a UTF-8 JSON record with a step): skipped", path, number)
  return records


class StepTracker:
  """Fetches each step's metrics one step late (so the host does not stall the device), checks they are finite,
  averages them into log lines, and drives the progress bar."""

  def __init__(self, writer: MetricWriter, *, batch_size: int, log_every: int, start: int, total: int):
    self._writer, self._batch, self._every, self._total = writer, batch_size, max(1, log_every), total
    self._pending, self._window = [], []
    self._clock, self._clock_steps = None, 0
    self._bar = tqdm.tqdm(total=total, initial=start, unit="step", dynamic_ncols=True, disable=jax.process_index() != 0)
    self.last: dict[str, float] = {}

  def add(self, step: int, metrics: dict, flush: bool = False) -> None:
    """Queues `step`'s metrics (device arrays); processes all but the newest, or all with `flush`.

    Raises:
      FloatingPointError: a processed step had a NaN/inf loss or gradient norm.
    """
    self._pending.append((step, metrics))
    while len(self._pending) > (0 if flush else 1):
      self._consume(*self._pending.pop(0))

  def show(self, record: dict) -> None:
    self._bar.set_postfix({k: f"{v:.3g}" for k, v in record.items() if k in ("train_loss", "val_loss", "val_top1")})

  def close(self) -> None:
    while self._pending:
      self._consume(*self._pending.pop(0))
    self._bar.close()

  def _consume(self, step: int, metrics: dict) -> None:
    host = {k: float(v) for k, v in jax.device_get(metrics).items()}
    # The new params too: a finite loss and gradient can still give a NaN update (e.g. a broken schedule).
    if not all(np.isfinite(host[k]) for k in ("loss", "grad_norm", "param_norm")):
      raise FloatingPointError(
          f"non-finite loss at step {step} (loss={host['loss']}, "
          f"grad_norm={host['grad_norm']}, param_norm={host['param_norm']})"
      )
    now = time.perf_counter()
    if self._clock is None:  # the first step includes compiling: time from its end
      self._clock, self._clock_steps = now, 0
    else:
      self._clock_steps += 1
    self._bar.update(1)
    self._window.append(host)
    if step % self._every == 0 or step == self._total:
      record = {"step": step}
      for k in host:
        record["train_" + k if k.endswith("loss") else k] = float(np.mean([m[k] for m in self._window]))
      if self._clock_steps:
        rate = self._clock_steps / (now - self._clock)
        record.update(steps_per_s=rate, images_per_s=rate * self._batch)
        self._clock, self._clock_steps = now, 0
      self._window = []
      self._writer.write(record)
      self.last = record
      self.show(record)


def plot_loss_curve(workdir: str) -> str | None:
  """`workdir/loss_curve.png`: train and validation loss, and validation top-1/top-5, against the step."""
  path = paths.metrics(workdir)
  if jax.process_index() != 0 or not os.path.exists(path):
    return None
  records = read_metrics(path)
  train = [r for r in records if "train_loss" in r]
  val = [r for r in records if "val_loss" in r]
  fig, (ax_loss, ax_top) = plt.subplots(1, 2, figsize=(11, 4))
  ax_loss.plot([r["step"] for r in train], [r["train_loss"] for r in train], label="train")
  ax_loss.plot([r["step"] for r in val], [r["val_loss"] for r in val], "o-", label="validation")
  ax_loss.set(xlabel="step", ylabel="loss", yscale="log", title="loss")
  ax_loss.legend()
  ranked = [r for r in records if "val_top1" in r]  # (the joint run validates retrieval only, without a loss)
  for key in ("val_top1", "val_top5"):
    ax_top.plot([r["step"] for r in ranked], [r[key] for r in ranked], "o-", label=key.replace("val_", ""))
  ax_top.set(
      xlabel="step", ylabel="fraction of validation images", ylim=(0, 1), title="image -> shape retrieval (validation)"
  )
  ax_top.legend()
  fig.tight_layout()
  out = paths.loss_curve(workdir)
  fig.savefig(out, dpi=100)
  plt.close(fig)
  return out
