"""reidsort.tracking must stay importable without torch (it is NumPy + SciPy only)."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def test_import_does_not_pull_torch_or_reid():
    code = (
        "import sys; sys.path.insert(0, %r)\n"
        "import reidsort.tracking\n"
        "heavy = sorted(m for m in sys.modules"
        " if m.split('.')[0] in ('torch', 'torchvision', 'lightning', 'cv2')"
        " or m.startswith('reidsort.reid'))\n"
        "print(','.join(heavy))\n"
    ) % str(SRC)
    completed = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    )
    assert completed.stdout.strip() == "", f"reidsort.tracking imported: {completed.stdout.strip()}"
