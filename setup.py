"""The package layout, which pyproject.toml cannot express (the metadata lives there).

conf/ stays at the top of the checkout (the lightning-hydra-template layout) and ships inside the
wheel as the ``reidsort.conf`` package, found by Hydra as ``pkg://reidsort.conf`` when installed.
"""

from setuptools import find_namespace_packages, setup

setup(
    # namespace packages too (src/hydra_plugins has no __init__.py), as pyproject's find did
    packages=[*find_namespace_packages("src"), "reidsort.conf"],
    package_dir={"": "src", "reidsort.conf": "conf"},
    package_data={"reidsort.conf": ["**/*.yaml"]},
)
