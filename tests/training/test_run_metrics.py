"""metrics.jsonl: damaged lines are skipped with a warning naming the file and line, a torn last line silently."""

import logging

from jembed.training import run_metrics


def test_invalid_utf8_and_garbage_lines_are_named_and_skipped(tmp_path, caplog):
  path = tmp_path / "metrics.jsonl"
  path.write_bytes(
      b'{"step": 2, "train_loss": 1.0}\n{"step": 4, "tra\xff\xfeloss": 0.5}\n[1, 2]\n{"step": 6, "train_lo'
  )
  with caplog.at_level(logging.WARNING):
    records = run_metrics.read_metrics(str(path))
  assert records == [{"step": 2, "train_loss": 1.0}]
  warnings = [r.getMessage() for r in caplog.records]
  assert any(f"{path} line 2 is damaged" in w for w in warnings) and any("line 3" in w for w in warnings)
  assert not any("line 4" in w for w in warnings)  # the torn last line of a killed run is no damage
