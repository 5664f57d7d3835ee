"""What every launcher shares (launch/common.py): one-line errors, checks before any work, quiet logging, closing list.

The in-process tests are fast; the ones that start launchers as a user does are marked slow.
"""

import errno
import logging
import os
import pathlib
import shutil
import subprocess
import sys
import time

import numpy as np
from PIL import Image
import pytest
import trimesh

from configs import tiny
from jembed.api import query
from jembed.render import contact_sheet
from jembed.shapes import sources
from launch import common

REPO = pathlib.Path(__file__).resolve().parents[2]


def _launch(module: str, *flags, timeout: int = 300) -> subprocess.CompletedProcess:
  return subprocess.run(
      [sys.executable, "-m", f"launch.{module}", *flags],
      cwd=REPO,
      capture_output=True,
      text=True,
      timeout=timeout,
      env={**os.environ, "PYTHONPATH": str(REPO)},
  )


def test_a_workdir_that_is_a_file_or_cannot_be_made_is_one_line(tmp_path):
  a_file = tmp_path / "notes.txt"
  a_file.write_text("x")
  with pytest.raises(NotADirectoryError, match=f"--workdir={a_file} is a file"):
    common.check_workdir(str(a_file))
  with pytest.raises(PermissionError, match=f"cannot create --workdir={a_file}/run"):
    common.check_workdir(str(a_file / "run"))
  common.check_workdir(str(tmp_path / "new" / "run"))
  assert (tmp_path / "new" / "run").is_dir()


def test_user_errors_end_in_one_line_and_name_unexpected_ones(monkeypatch):
  for error, expected in [
      (
          FileNotFoundError("no dataset in W: run launch.build_dataset"),
          "error: no dataset in W: run launch.build_dataset",
      ),
      (ZeroDivisionError("division by zero"), "error: ZeroDivisionError: division by zero"),
  ]:
    with pytest.raises(SystemExit) as exit_info:
      with common.user_errors():
        raise error
    assert str(exit_info.value.code).startswith(expected) and "\n" not in str(exit_info.value.code)


def test_the_closing_list_leaves_out_paths_that_were_not_written(tmp_path, capsys):
  written = tmp_path / "loss_curve.png"
  written.write_bytes(b"png")
  common.print_outputs({"loss curve": str(written), "checkpoints": str(tmp_path / "checkpoints")})
  out = capsys.readouterr().out
  assert f"loss curve  {written}" in out and str(tmp_path / "checkpoints") not in out
  assert "not written by this run: checkpoints" in out


def test_quiet_logging_drops_other_libraries_info_but_keeps_warnings():
  own = os.path.join(REPO, "jembed", "query.py")
  other = os.path.join("site-packages", "orbax", "checkpoint", "checkpoint_manager.py")
  jax_file = os.path.join("site-packages", "jax", "_src", "xla_bridge.py")

  def passes(level, path, own_level=logging.INFO):
    return common._QuietFilter(own_level).filter(logging.LogRecord("absl", level, path, 1, "m", None, None))

  assert passes(logging.INFO, own) and not passes(logging.INFO, own, logging.WARNING)
  assert not passes(logging.INFO, other) and not passes(logging.WARNING, other) and passes(logging.ERROR, other)
  assert not passes(logging.INFO, jax_file) and passes(logging.WARNING, jax_file)


def test_photos_with_one_name_get_their_own_galleries():
  names = query.gallery_names(["a/chair.jpg", "b/chair.png", "c/table.jpg", "d/chair.JPG"])
  assert names == ["chair.png", "chair-2.png", "table.png", "chair-3.png"]
  assert len(set(names)) == len(names)


def _folder_of_meshes(root: pathlib.Path) -> None:
  """Two categories; the first pick of 'box' (box/a.obj) is broken, its other shapes are fine."""
  (root / "box").mkdir(parents=True)
  (root / "ball").mkdir()
  (root / "box" / "a.obj").write_text("this is not a mesh\n")
  trimesh.creation.box().export(root / "box" / "b.obj")
  trimesh.creation.box(extents=(1, 2, 1)).export(root / "box" / "c.obj")
  trimesh.creation.icosphere(subdivisions=1).export(root / "ball" / "a.obj")


def test_a_contact_sheet_keeps_a_category_whose_first_pick_is_broken(tmp_path, caplog):
  _folder_of_meshes(tmp_path / "meshes")
  config = tiny.get_config(f"source=folder,root={tmp_path / 'meshes'},render.backend=embree")
  thumb = 16
  with caplog.at_level(logging.INFO):
    png = contact_sheet.write_contact_sheet(config, str(tmp_path / "wd"), per_category=1, thumb=thumb)
  rows = (Image.open(png).size[1] - 22 - 2) // (thumb + 2)
  assert rows == 2  # ball and box: box/b.obj stands in for the broken box/a.obj
  img = np.asarray(Image.open(png).convert("L"))
  for r in range(rows):  # each row shows an object
    y = 22 + 2 + r * (thumb + 2)
    assert (img[y : y + thumb, 150:] < 200).any()
  assert not [r for r in caplog.records if "shapes loaded" in r.getMessage()]  # no per-part count read as a total


def test_counts_of_a_partial_load_are_left_to_the_caller(tmp_path, caplog):
  _folder_of_meshes(tmp_path / "meshes")
  refs = sources.list_shapes(tiny.get_config(f"source=folder,root={tmp_path / 'meshes'}").shapes)
  report = sources.LoadReport()
  with caplog.at_level(logging.INFO):
    for part in (refs[:2], refs[2:]):
      list(sources.iter_shapes(part, report=report, summary=False))
  assert not [r for r in caplog.records if "shapes loaded" in r.getMessage()]
  assert report.summary().startswith("3 of 4 shapes loaded, 1 skipped")


@pytest.mark.slow
@pytest.mark.parametrize(
    "flags, says",
    [
        (["--config.mds.dim=0"], "error: config.mds.dim=0: must be an integer >= 1"),
        (["--config=configs/tiny.py:mds.dimm=3"], "mds has no field 'dimm'"),
        (["--config.mds.dimm=3"], "error: --config.mds.dimm=3: the config has no field 'dimm' (did you mean 'dim'?)"),
        (["--config=configs/nope.py"], "error: --config=configs/nope.py: no such file"),
        (["--thumb=0"], "error: flag --thumb=0: 0 is not integer >= 8"),
    ],
)
def test_launcher_errors_are_one_line_before_any_work(tmp_path, flags, says):
  workdir = tmp_path / "wd"
  result = _launch("render_views", "--config=configs/tiny.py", f"--workdir={workdir}", *flags)
  assert result.returncode != 0
  lines = [line for line in result.stderr.splitlines() if line.strip()]
  assert says in lines[-1] and "Traceback" not in result.stderr, result.stderr[-2000:]
  assert not workdir.exists()  # nothing was started


@pytest.mark.slow
def test_debug_shows_the_traceback(tmp_path):
  result = _launch("render_views", "--config=configs/tiny.py", f"--workdir={tmp_path}", "--config.mds.dim=0", "--debug")
  assert result.returncode != 0 and "Traceback" in result.stderr and "config.mds.dim=0" in result.stderr


@pytest.mark.slow
def test_query_results_are_not_drowned_in_library_logging(tiny_run, tmp_path):
  workdir, outputs, _ = tiny_run
  photo = outputs["dataset samples"]
  result = _launch(
      "query", f"--workdir={workdir}", f"--image={photo}", f"--image={photo}", "--top_k=2", f"--out_dir={tmp_path}"
  )
  assert result.returncode == 0, result.stderr[-2000:]
  assert "checkpoint_manager" not in result.stderr and "xla_bridge" not in result.stderr
  assert sorted(os.listdir(tmp_path)) == ["dataset_samples-2.png", "dataset_samples.png"]
  result = _launch("query", f"--workdir={workdir}", f"--image={photo}", "--top_k=0")
  assert result.returncode != 0 and result.stderr.strip().splitlines()[-1] == (
      "error: flag --top_k=0: 0 is not a positive integer"
  )


_LONG = "train.total_steps=100000"


def _wait_for_lock_note(workdir: pathlib.Path, proc: subprocess.Popen, timeout: float = 120.0) -> None:
  """Until `proc` (a launcher) has taken its workdir locks (its holder note is there)."""
  deadline = time.monotonic() + timeout
  while not list((workdir / ".locks").glob(f"holder.*.{proc.pid}.json")):
    assert proc.poll() is None and time.monotonic() < deadline, f"exit {proc.poll()} before taking the locks"
    time.sleep(0.2)


@pytest.mark.slow
def test_concurrent_launchers_on_one_workdir_second_writer_stops_in_one_line(tiny_run, tmp_path):
  """Two real launchers: while a train runs, embed_shapes (another mds.dim) and a second train (the same settings)
  stop at once with its PID and command, and leave its checkpoints and metrics alone."""
  run = tmp_path / "run"
  shutil.copytree(tiny_run[0], run, ignore=shutil.ignore_patterns("eval", "queries", "inversions", ".locks"))
  log = open(tmp_path / "first.log", "w")  # pylint: disable=consider-using-with  (closed below)
  first = subprocess.Popen(  # resumes the finished run's last checkpoint and goes on for a long while
      [sys.executable, "-m", "launch.train", "--config=configs/tiny.py", f"--workdir={run}", f"--config.{_LONG}"],
      cwd=REPO,
      stdout=log,
      stderr=log,
      env={**os.environ, "PYTHONPATH": str(REPO)},
  )
  try:
    _wait_for_lock_note(run, first)
    embedding = (run / "shape_embedding.npz").read_bytes()
    for module, flag in (("embed_shapes", "--config.mds.dim=3"), ("train", f"--config.{_LONG}")):
      result = _launch(module, "--config=configs/tiny.py", f"--workdir={run}", flag)
      last = result.stderr.strip().splitlines()[-1]
      assert result.returncode == 1 and last.startswith(f"error: {run} is busy: PID {first.pid}"), last
      assert "python -m launch.train --config=configs/tiny.py" in last and "--wait" in last
    assert first.poll() is None and (run / "shape_embedding.npz").read_bytes() == embedding
  finally:
    first.kill()
    first.wait()
    log.close()


@pytest.mark.parametrize(
    "error, says",
    [
        (OSError(errno.ENOSPC, "No space left on device", "/w/lfd/distances.npy"), "free space on its disk"),
        (OSError(errno.EROFS, "Read-only file system", "/w/queries/a.png"), "use another --workdir"),
        (PermissionError(errno.EPERM, "Operation not permitted", "/w/provenance.json"), "chattr -i"),
    ],
)
def test_os_errors_a_user_causes_are_one_line_naming_the_file_and_the_fix(error, says):
  with pytest.raises(SystemExit) as exit_info:
    with common.user_errors():
      raise error
  line = str(exit_info.value.code)
  assert line.startswith(f"error: {error.strerror}: {error.filename}") and says in line and "unexpected" not in line


def test_query_names_a_workdir_that_is_a_file_and_an_out_dir_it_cannot_write(tmp_path):
  a_file = tmp_path / "run.txt"
  a_file.write_text("x")
  with pytest.raises(NotADirectoryError, match="is a file, not a folder"):
    query.check_workdir(str(a_file))
  with pytest.raises(PermissionError, match=f"cannot create --out_dir={a_file}/queries"):
    common.check_workdir(str(a_file / "queries"), "--out_dir")
