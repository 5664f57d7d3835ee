"""The contact sheet launcher, as a user runs it, on the catalog and on real meshes."""

import os
import pathlib
import subprocess
import sys

import numpy as np
from PIL import Image
import pytest

from configs import tiny
from jembed.render import contact_sheet

REPO = pathlib.Path(__file__).resolve().parents[2]


def _rows_with_content(png: pathlib.Path, n_rows: int, thumb: int) -> int:
  """How many of the sheet's rows hold non-white pixels in the view area."""
  img = np.asarray(Image.open(png).convert("L"))
  top = 22
  count = 0
  for r in range(n_rows):
    y = top + 2 + r * (thumb + 2)
    count += int((img[y : y + thumb, 150:] < 200).any())
  return count


@pytest.mark.slow
def test_launcher_on_tiny_catalog(tmp_path):
  workdir = tmp_path / "wd"
  cmd = [
      sys.executable,
      "-m",
      "launch.render_views",
      "--config=configs/tiny.py",
      f"--workdir={workdir}",
      "--per_category=1",
      "--thumb=32",
      "--config.render.backend=embree",
  ]
  result = subprocess.run(
      cmd, cwd=REPO, capture_output=True, text=True, timeout=300, env={**os.environ, "PYTHONPATH": str(REPO)}
  )
  assert result.returncode == 0, result.stderr[-2000:]
  png = workdir / "contact_sheet.png"
  assert result.stdout.strip().endswith(str(png))
  img = Image.open(png)
  assert img.size == (150 + 20 * 34 + 2, 22 + 6 * 34 + 2)  # 6 categories x 20 views.
  assert _rows_with_content(png, 6, 32) == 6


def test_contact_sheet_on_objectnet3d(shared_data, tmp_path):
  config = tiny.get_config()
  config.shapes.source = "folder"
  config.shapes.root = str(shared_data / "objectnet3d_cad")
  config.shapes.categories = ("chair", "aeroplane", "car")
  config.shapes.up_axis, config.shapes.front = "z", "-y"
  png = contact_sheet.write_contact_sheet(config, str(tmp_path), per_category=2, thumb=32)
  assert _rows_with_content(pathlib.Path(png), 6, 32) == 6


def test_wrong_root_is_a_clear_error(tmp_path):
  cmd = [
      sys.executable,
      "-m",
      "launch.render_views",
      "--config=configs/tiny.py",
      f"--workdir={tmp_path}",
      "--config.shapes.source=folder",
      f"--config.shapes.root={tmp_path}/nowhere",
  ]
  result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=300)
  assert result.returncode != 0
  assert f"{tmp_path}/nowhere" in result.stderr and "does not exist" in result.stderr
