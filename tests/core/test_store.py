"""The hub's store keeps frames of several updates with their range, and reads stores from before batches."""

from __future__ import annotations

import sqlite3

from secmon.hub.store import HubStore
from secmon.protocol.batches import UpdateFrame


def test_frames_of_several_updates_come_back_with_their_ranges(tmp_path):
    store = HubStore(tmp_path, ring_size=100)
    frames = [UpdateFrame(1, 1, b"one"), UpdateFrame(2, 5, b"two-to-five")]
    store.save(frames, "node-a", 4)
    store.close()
    store = HubStore(tmp_path, ring_size=100)
    assert store.load_ring()[1] == frames
    assert store.last_event_seq("node-a") == 4


def test_a_store_written_before_batches_is_read_as_frames_of_one(tmp_path):
    old = sqlite3.connect(tmp_path / "hub.sqlite3")
    old.execute("CREATE TABLE ring (seq INTEGER PRIMARY KEY, frame BLOB NOT NULL)")
    old.executemany("INSERT INTO ring VALUES (?, ?)", [(7, b"seven"), (8, b"eight")])
    old.commit()
    old.close()
    store = HubStore(tmp_path, ring_size=100)
    store.save([UpdateFrame(9, 11, b"nine-to-eleven")])
    held = [UpdateFrame(7, 7, b"seven"), UpdateFrame(8, 8, b"eight"), UpdateFrame(9, 11, b"nine-to-eleven")]
    assert store.load_ring()[1] == held
