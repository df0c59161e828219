"""The job store and the chunk task against a real Redis (no broker: the task body is called directly)."""

from __future__ import annotations

import json

import pytest

from digitflow.jobstore import CANCELLED, FAILED, RUNNING, SUCCEEDED, JobStore, pack_inputs, unpack_inputs
from tests.conftest import digit_png

MODEL = {"version": "test", "architecture": "tiny", "test_accuracy": None}


@pytest.fixture
def store(redis_client) -> JobStore:
    return JobStore(redis_client, ttl_seconds=600)


def test_redelivered_results_overwrite_and_counts_stay_exact(store):
    job = store.create(total=3, chunks=1, kind="bulk", model=MODEL)
    store.add_chunk(job, 0, ["a", "b", "c"], {0: b"x", 1: b"y", 2: b"z"}, {})
    first = {0: {"digit": 1, "confidence": 0.9}, 1: {"error": {"code": "no_digit_found", "message": "blank"}}}
    store.mark_running(job)
    store.write_results(job, first, {0: bytes(784)})
    store.write_results(job, first, {0: bytes(784)})  # the same chunk delivered again
    got = store.get(job)
    assert (got["status"], got["done"], got["failed"]) == (RUNNING, 2, 1)
    store.write_results(job, {2: {"digit": 7, "confidence": 0.99}}, {}, done_chunk=0)
    got = store.get(job)
    assert (got["status"], got["done"], got["failed"]) == (SUCCEEDED, 3, 1)
    assert store.chunk_inputs(job, 0) == {}  # raw inputs dropped once the chunk is done
    assert [r["filename"] for r in store.results(job, 1, 5)] == ["b", "c"]


def test_a_chunk_comes_back_as_stored_in_one_value(store):
    inputs = {7: b"\x89PNG" + bytes(range(256)) * 3, 8: b"", 11: b"x" * 70_000}  # any bytes, an empty file too
    job = store.create(total=12, chunks=2, kind="bulk", model=MODEL)
    store.add_chunk(job, 1, ["n"] * 3, inputs, {})
    assert store.r.type(store.key(job, "in:1")) == b"string"
    assert store.chunk_inputs(job, 1) == inputs
    with pytest.raises(ValueError):
        unpack_inputs(pack_inputs(inputs)[:-1])  # a value that does not add up is refused, not half read


def test_a_chunk_stored_by_the_previous_layout_is_still_read(store):
    """During an upgrade, workers of this version finish chunks that a web of before stored as a hash."""
    job = store.create(total=2, chunks=1, kind="bulk", model=MODEL)
    store.r.hset(store.key(job, "in:0"), mapping={"0": b"a", "1": b"bc"})
    assert store.chunk_inputs(job, 0) == {0: b"a", 1: b"bc"}
    assert store.begin_chunk(job, 0) == ("queued", False, {0: b"a", 1: b"bc"})


def test_a_chunk_task_starts_with_the_status_and_the_inputs(store):
    job = store.create(total=2, chunks=1, kind="bulk", model=MODEL)
    store.add_chunk(job, 0, ["a", "b"], {0: b"a", 1: b"bc"}, {})
    assert store.begin_chunk(job, 0) == ("queued", False, {0: b"a", 1: b"bc"})
    store.mark_running(job)
    assert store.begin_chunk(job, 0)[:2] == ("running", True)
    store.write_results(job, {0: {"digit": 1}, 1: {"digit": 2}}, {}, done_chunk=0)
    assert store.begin_chunk(job, 0) == ("succeeded", True, {})
    store.delete(job)
    assert store.begin_chunk(job, 0) == (None, False, {})


def test_every_image_failing_means_failed(store):
    job = store.create(total=2, chunks=1, kind="bulk", model=MODEL)
    err = {"error": {"code": "not_an_image", "message": "x"}}
    store.add_chunk(job, 0, ["a", "b"], {}, {0: err["error"], 1: err["error"]})
    assert store.get(job)["status"] == FAILED


def test_everything_expires_with_the_job(store):
    job = store.create(total=1, chunks=1, kind="bulk", model=MODEL)
    store.add_chunk(job, 0, ["a"], {0: b"x"}, {})
    store.write_results(job, {0: {"digit": 1, "confidence": 1.0}}, {0: bytes(784)}, done_chunk=0, worker="w@h")
    keys = list(store.r.scan_iter(f"df:{{{job}}}:*"))
    assert len(keys) >= 5
    assert all(0 < store.r.ttl(k) <= 601 for k in keys)


def test_cancel_drops_inputs_and_the_chunk_task_skips(store, monkeypatch):
    from worker import tasks

    job = store.create(total=1, chunks=1, kind="bulk", model=MODEL)
    store.add_chunk(job, 0, ["a"], {0: b"x"}, {})
    store.cancel(job)
    monkeypatch.setattr(tasks, "store", lambda: store)
    assert tasks.process_chunk.run(job, 0) == 0
    assert store.get(job)["status"] == CANCELLED and store.get(job)["done"] == 0


def test_poison_chunk_is_failed_after_the_delivery_cap(store, monkeypatch, mnist_test):
    from worker import tasks

    job = store.create(total=1, chunks=1, kind="bulk", model=MODEL)
    store.add_chunk(job, 0, ["a.png"], {0: digit_png(mnist_test[0][0])}, {})
    store.r.set(store.key(job, "tries:0"), tasks.settings.max_redeliveries + 1)  # it crashed every time so far
    monkeypatch.setattr(tasks, "store", lambda: store)
    assert tasks.process_chunk.run(job, 0) == 0
    item = store.results(job, 0, 1)[0]
    assert item["result"]["error"]["code"] == "processing_failed"
    assert store.get(job)["status"] == FAILED


def test_chunk_task_predicts_and_stores_digits(store, monkeypatch, mnist_test):
    from worker import tasks

    x, y = mnist_test
    job = store.create(total=3, chunks=1, kind="bulk", model=MODEL)
    store.add_chunk(job, 0, ["0", "1", "2"], {i: digit_png(x[i]) for i in range(3)}, {})
    monkeypatch.setattr(tasks, "store", lambda: store)
    assert tasks.process_chunk.run(job, 0) == 3
    results = [json.loads(store.r.hget(store.key(job, "res"), str(i))) for i in range(3)]
    assert [r["digit"] for r in results] == [int(v) for v in y[:3]]
    assert len(store.image(job, 0)) == 784


def test_packed_digits_come_back_exactly():
    import numpy as np

    from digitflow.jobstore import pack_digits, unpack_digits

    rng = np.random.default_rng(3)
    digits = {5: bytes(784), 6: bytes([255]) * 784, 9: rng.integers(0, 256, 784, dtype=np.uint8).tobytes(),
              70_000: (rng.random(784) < 0.2).astype(np.uint8).tobytes()}
    packed = pack_digits(digits)
    assert unpack_digits(packed) == digits
    with pytest.raises(ValueError):
        unpack_digits(packed[:-1])


def _done_chunk(store, monkeypatch, inputs: dict[int, bytes]) -> str:
    from worker import tasks

    job = store.create(total=len(inputs), chunks=1, kind="bulk", model=MODEL, plan=[len(inputs)])
    store.add_chunk(job, 0, [f"{i}.png" for i in inputs], inputs, {})
    monkeypatch.setattr(tasks, "store", lambda: store)
    assert tasks.process_chunk.run(job, 0) == len(inputs)
    return job


def test_small_uploads_are_kept_once_as_their_own_previews(store, monkeypatch, mnist_test):
    from worker import tasks
    from worker.pipeline import prepare

    x, _ = mnist_test
    inputs = {i: digit_png(x[i]) for i in range(4)}
    job = _done_chunk(store, monkeypatch, inputs)
    assert not store.r.exists(store.key(job, "prev"))  # no second copy of the uploads
    assert [store.preview(job, i) for i in range(4)] == list(inputs.values())
    assert store.images(job, [3, 0]) == [prepare(inputs[i], 10**7).tobytes() for i in (3, 0)]
    assert store.chunk_inputs(job, 0) == {}  # the chunk counts as done
    assert tasks.process_chunk.run(job, 0) == 0  # a second delivery finds it done
    store.delete(job)
    assert not list(store.r.scan_iter(f"df:{{{job}}}:*"))


def test_a_chunk_with_a_large_upload_stores_previews_and_drops_its_inputs(store, monkeypatch, mnist_test):
    import io

    from PIL import Image

    x, _ = mnist_test
    big = io.BytesIO()
    Image.fromarray(x[1]).resize((400, 400)).save(big, "PNG")
    inputs = {0: digit_png(x[0]), 1: big.getvalue()}
    job = _done_chunk(store, monkeypatch, inputs)
    assert not store.r.exists(store.key(job, "src:0")) and not store.r.exists(store.key(job, "in:0"))
    assert store.preview(job, 0) == inputs[0]
    assert store.preview(job, 1).startswith(b"\xff\xd8")  # a small JPEG, not the 400 px upload
    assert all(len(d) == 784 for d in store.images(job, [0, 1]))


def test_digits_are_found_by_the_plan_across_chunks(store):
    job = store.create(total=5, chunks=2, kind="bulk", model=MODEL, plan=[3, 2])
    a, b = ({i: bytes([i]) * 784 for i in range(3)}, {i: bytes([i]) * 784 for i in range(3, 5)})
    store.write_results(job, {i: {"digit": 1} for i in a}, a, done_chunk=0)
    store.write_results(job, {i: {"digit": 1} for i in b}, b, done_chunk=1)
    assert store.images(job, [4, 0, 2, 3]) == [bytes([i]) * 784 for i in (4, 0, 2, 3)]
    assert store.image(job, 9) is None
