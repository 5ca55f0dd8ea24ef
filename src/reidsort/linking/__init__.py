"""AFLink (StrongSORT++'s appearance-free link model): the torch network, tracklet pairs from
MOT ground truth, Lightning training and export. Inference on tracker results is torch-free:
:mod:`reidsort.tracking.aflink` (``postprocess=aflink``)."""
