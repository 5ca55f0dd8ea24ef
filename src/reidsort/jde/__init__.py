"""Joint detection and embedding (FairMOT, Zhang et al., IJCV 2021): one network finds people as
centre-heatmap peaks at stride 4 and embeds them in the same pass.

Modules (imported on demand; this package imports nothing eagerly, so the NumPy-only pieces load
without torch):

* ``targets`` (NumPy): boxes + ids -> heatmap / size / offset / index / mask training targets;
* ``decode`` (NumPy): network maps -> detections ``[x1, y1, x2, y2, score, cls]`` + embeddings;
* ``model`` (torch): :class:`~reidsort.jde.model.JDENet`, a backbone + upsampling neck + heads;
* ``dla`` (torch): DLA-34 without deformable convolutions, FairMOT's default backbone;
* ``losses`` (torch): focal, masked L1, identity cross-entropy, uncertainty weighting, JDELoss;
* ``data`` (torch): datasets and the LightningDataModule.
"""
