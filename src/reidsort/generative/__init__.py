"""Generative augmentation for Re-ID: person GANs (DCGAN, WGAN-GP, VAE-GAN) trained on the
training identities of a dataset, their sample quality (FID / KID with offline feature
networks) and the images they write for LSRO training (``data.generated_root``).

Modules (imported on demand):

* ``networks``: generator, discriminator / critic, VAE-GAN encoder (spectral norm, attention,
  identity conditioning as options);
* ``losses``: the BCE, Wasserstein + gradient penalty and VAE-GAN objectives;
* ``ema``: the generator's exponential moving average;
* ``module``: :class:`~reidsort.generative.module.GANModule`, the LightningModule (manual
  optimisation);
* ``data``: :class:`~reidsort.generative.data.GANDataModule` (training split only);
* ``quality``: FID / KID; ``callbacks``: sample grids, quality per epoch, epoch line;
* ``images``: seeded sampling in batches, uint8 files and grids.
"""
