"""reidsort entry point: ``python main.py task=<train|synth|...> [overrides]``."""

import sys
from pathlib import Path

# Run from a source checkout without installing: put src/ on the path.
sys.path.insert(0, str(Path(__file__).resolve().parent / "src"))

from reidsort.cli import main  # noqa: E402

if __name__ == "__main__":
    main()
