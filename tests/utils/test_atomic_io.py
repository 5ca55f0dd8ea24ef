"""Atomic writes: the finished file gets the mode a plain open() would give (umask respected),
not the 0600 of the temporary file."""

from __future__ import annotations

import os
import stat
import subprocess
import sys

import pytest

from reidsort.utils.io import atomic_output, atomic_write_bytes, atomic_write_text, process_umask


def _mode(path) -> int:
    return stat.S_IMODE(os.stat(path).st_mode)


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
def test_written_files_follow_the_umask(tmp_path):
    expected = 0o666 & ~process_umask()
    assert _mode(atomic_write_text(tmp_path / "a.txt", "x")) == expected
    assert _mode(atomic_write_bytes(tmp_path / "b.bin", b"x")) == expected
    with atomic_output(tmp_path / "c.onnx") as tmp:
        tmp.write_bytes(b"model")  # a writer that reopens the temporary path
    assert _mode(tmp_path / "c.onnx") == expected
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.txt", "b.bin", "c.onnx"]


@pytest.mark.skipif(os.name != "posix", reason="POSIX file modes")
@pytest.mark.parametrize("umask, mode", [(0o022, 0o644), (0o077, 0o600), (0o002, 0o664)])
def test_a_fresh_process_with_another_umask(tmp_path, umask, mode):
    target = tmp_path / "out.txt"
    code = (f"import os; os.umask({umask}); from reidsort.utils.io import atomic_write_text; "
            f"atomic_write_text({str(target)!r}, 'x')")
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)
    assert _mode(target) == mode


def test_a_failed_write_leaves_nothing(tmp_path):
    with pytest.raises(RuntimeError), atomic_output(tmp_path / "x.txt") as tmp:
        tmp.write_text("half")
        raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []
