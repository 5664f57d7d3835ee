"""Captions of the galleries (`jembed.utils.viz`): long lines are wrapped to the tile, never cut."""

import numpy as np

from jembed.utils import viz


def test_wrap_keeps_every_character_and_fits_the_width():
  font = viz._font(12)  # pylint: disable=protected-access
  for text in (
      "bookcase/035_EXPEDIT_expedit_bookcase_4x4",
      "verified top-1 over the photo, a caption that goes on",
      "x" * 90,
      "short",
  ):
    lines = viz.wrap(text, font, 160)
    assert all(font.getlength(line) <= 160 for line in lines), lines
    assert "".join(lines).replace(" ", "") == text.replace(" ", "")
  assert viz.wrap("bookcase/035_EXPEDIT_expedit_bookcase_4x4", font, 160) == [
      "bookcase/035_EXPEDIT_",
      "expedit_bookcase_4x4",
  ]  # broken after an underscore, not inside a word
  assert viz.wrap("short", font, 160) == ["short"] and viz.wrap("", font, 160) == [""]


def test_a_wrapped_caption_makes_the_row_taller():
  tile = np.zeros((32, 32, 3), np.uint8)
  one = viz.captioned_row([tile], [["sofa/126_SATER"]], thumb=160)
  two = viz.captioned_row([tile], [["bookcase/035_EXPEDIT_expedit_bookcase_4x4"]], thumb=160)
  assert two.height == one.height + 15 and two.width == one.width
