"""How a bulk job is cut into chunk tasks: every image in exactly one chunk, in order, the job's end in small chunks."""

from __future__ import annotations

import pytest

from web.ingest import chunk_plan


@pytest.mark.parametrize("total", [1, 3, 127, 128, 129, 1000, 1025, 1536, 10_000, 100_000])
def test_every_image_is_in_one_chunk_and_no_chunk_is_larger_than_the_setting(total):
    sizes = chunk_plan(total, 512)
    assert sum(sizes) == total
    assert all(0 < s <= 512 for s in sizes)


def test_a_large_job_uses_full_chunks_and_ends_in_quarter_chunks():
    sizes = chunk_plan(10_000, 512)
    assert sizes[:16] == [512] * 16  # few tasks for most of the job
    assert max(sizes[-8:]) == 128  # no full chunk left alone on one core at the end


def test_an_empty_job_has_no_chunks():
    assert chunk_plan(0, 512) == []
