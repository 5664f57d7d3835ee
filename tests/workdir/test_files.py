"""Atomic writes leave nothing behind when they fail, and a full disk is an error naming the file, never a SIGBUS."""

import errno
import os

import numpy as np
import pytest

from jembed.workdir import files


def test_a_failed_replace_leaves_no_temporary_file_and_names_the_fix(tmp_path, monkeypatch):
  """An immutable target (chattr +i): the rename fails with EPERM."""
  target = tmp_path / "provenance.json"
  files.write_json(str(target), {"a": 1})

  def refuse(src, dst):
    raise PermissionError(errno.EPERM, "Operation not permitted", src, None, dst)

  monkeypatch.setattr(os, "replace", refuse)
  with pytest.raises(files.WorkdirError, match=r"Operation not permitted: .*provenance.json; .*chattr -i"):
    files.write_json(str(target), {"a": 2})
  with pytest.raises(files.WorkdirError):
    files.save_npz(str(tmp_path / "x.npz"), a=np.zeros(3))
  assert sorted(os.listdir(tmp_path)) == ["provenance.json"]  # no .tmp files
  assert target.read_text() == '{"a": 1}'


def test_a_memory_map_without_disk_space_is_an_error_before_any_page_is_written(tmp_path, monkeypatch):
  def full(fd, offset, length):
    raise OSError(errno.ENOSPC, "No space left on device")

  monkeypatch.setattr(os, "posix_fallocate", full, raising=False)
  path = str(tmp_path / "descriptors.npy")
  with pytest.raises(files.WorkdirError, match=r"No space left on device: .*descriptors.npy \(0.08 GB\); free space"):
    files.open_memmap(path, np.float32, (100, 203760))
  assert not os.path.exists(path)


@pytest.mark.skipif(not hasattr(os, "posix_fallocate"), reason="posix_fallocate is Linux's")
def test_a_memory_map_reserves_its_blocks(tmp_path):
  path = str(tmp_path / "d.npy")
  out = files.open_memmap(path, np.float32, (64, 1024))
  assert os.stat(path).st_blocks * 512 >= out.nbytes  # not sparse: writing pages later needs no new blocks
  out[:] = 1.0
  out.flush()
  np.testing.assert_array_equal(np.load(path), 1.0)
