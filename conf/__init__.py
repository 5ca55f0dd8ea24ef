"""reidsort's Hydra configs. In a checkout Hydra reads this folder directly; the wheel ships it
as the ``reidsort.conf`` package (pyproject.toml), which Hydra's ``pkg://`` search path needs."""
