"""The token stores: FileTokenStore's file mode, atomic replacement and its lock between
processes; MemoryTokenStore's round trip; the TokenStore protocol they share."""

from __future__ import annotations

import os
import subprocess
import sys
import threading
from pathlib import Path

from gatehouse.client import FileTokenStore, MemoryTokenStore, StoredTokens, TokenStore

TOKENS = StoredTokens("access-1", "ghr_refresh-1", 1_900_000_000.0, "sid-1")


def test_both_stores_satisfy_the_protocol_and_round_trip(tmp_path: Path) -> None:
    """save/load/clear round-trip in memory and on disk; both are TokenStores."""
    for store in (MemoryTokenStore(), FileTokenStore(tmp_path / "tokens.json")):
        assert isinstance(store, TokenStore)
        store.save(TOKENS)
        assert store.load() == TOKENS
        store.clear()
        assert store.load() is None


def test_the_file_is_created_with_mode_0600(tmp_path: Path) -> None:
    """The token file is 0600 (and its lock file too), whatever the umask."""
    previous = os.umask(0)
    try:
        store = FileTokenStore(tmp_path / "tokens.json")
        store.save(TOKENS)
        with store.lock():
            pass
    finally:
        os.umask(previous)
    assert (tmp_path / "tokens.json").stat().st_mode & 0o777 == 0o600
    assert (tmp_path / "tokens.json.lock").stat().st_mode & 0o777 == 0o600


def test_saves_replace_the_file_whole_and_leave_no_temp_files(tmp_path: Path) -> None:
    """A reader racing 4 writers always sees one complete record, never a torn one."""
    store = FileTokenStore(tmp_path / "tokens.json")
    store.save(TOKENS)
    stop = threading.Event()
    seen: list[StoredTokens | None] = []

    def read() -> None:
        while not stop.is_set():
            seen.append(store.load())

    def write(n: int) -> None:
        for i in range(100):
            store.save(StoredTokens(f"access-{n}-{i}" * 50, f"ghr_{n}-{i}", float(i), "sid"))

    reader = threading.Thread(target=read)
    reader.start()
    writers = [threading.Thread(target=write, args=(n,)) for n in range(4)]
    for w in writers:
        w.start()
    for w in writers:
        w.join()
    stop.set()
    reader.join()
    assert seen
    assert all(s is not None for s in seen)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tokens.json"]


def test_an_unreadable_file_loads_as_logged_out(tmp_path: Path) -> None:
    """A corrupt or missing file loads as None, never an exception."""
    path = tmp_path / "tokens.json"
    assert FileTokenStore(path).load() is None
    path.write_text("{not json")
    assert FileTokenStore(path).load() is None


_INCREMENT = """
import sys, time
from gatehouse.client import FileTokenStore, StoredTokens
store = FileTokenStore(sys.argv[1])
for _ in range(25):
    with store.lock():
        current = store.load()
        n = int(current.access_token) if current else 0
        time.sleep(0.002)
        store.save(StoredTokens(str(n + 1), None, 0.0, None))
"""


def test_the_lock_excludes_another_process(tmp_path: Path) -> None:
    """Two processes doing read-modify-write under lock() lose no update (50 of 50)."""
    path = str(tmp_path / "tokens.json")
    procs = [
        subprocess.Popen([sys.executable, "-c", _INCREMENT, path])  # noqa: S603 - fixed script
        for _ in range(2)
    ]
    assert [p.wait(timeout=60) for p in procs] == [0, 0]
    final = FileTokenStore(path).load()
    assert final is not None
    assert final.access_token == "50"
