from pathlib import Path

import pytest

from conftest import compose_config
from reidsort.data.datasets import read_market1501
from reidsort.tasks.synth import synth
from reidsort.utils.errors import ReidsortError

SMALL = ["task=synth", "data.synthetic.num_identities=8", "data.synthetic.num_cameras=3",
         "data.synthetic.images_per_identity_camera=2"]


def test_synth_task_writes_a_market_dataset_the_reader_loads(tmp_path):
    root = tmp_path / "synth"
    cfg = compose_config([*SMALL, f"task.root={root}"], tmp_path / "run")
    metrics = synth(cfg)
    split = read_market1501(root)
    assert metrics["synth/num_train_images"] == len(split.train)
    assert metrics["synth/num_query_images"] == len(split.query)
    assert metrics["synth/num_gallery_images"] == len(split.gallery)
    assert len({r.pid for r in split.train}) == 4
    assert (root / "synthetic_meta.json").is_file()


def test_synth_task_refuses_to_overwrite_without_consent(tmp_path):
    root = tmp_path / "synth"
    root.mkdir()
    (root / "keep.txt").write_text("precious")
    cfg = compose_config([*SMALL, f"task.root={root}"], tmp_path / "run")
    with pytest.raises(ReidsortError, match="overwrite"):
        synth(cfg)
    assert (root / "keep.txt").read_text() == "precious"
    cfg = compose_config([*SMALL, f"task.root={root}", "task.overwrite=true"], tmp_path / "run")
    synth(cfg)
    assert not (root / "keep.txt").exists() and Path(root / "query").is_dir()
