"""The one preprocessing (NumPy): known answers, torchvision agreement, eval_transform identity."""

from __future__ import annotations

import cv2
import numpy as np
import pytest
import torch
from torchvision.transforms import v2

from reidsort.data.preprocess import (
    IMAGENET_MEAN,
    IMAGENET_STD,
    PreprocessSpec,
    preprocess_crops,
    preprocess_image,
    resize_antialiased,
)
from reidsort.data.transforms import eval_transform

torch.set_num_threads(1)


def _image(height: int, width: int, seed: int = 0) -> np.ndarray:
    """A smooth random colour image (resampling differences show on edges, so not too smooth)."""
    rng = np.random.default_rng(seed)
    noise = rng.integers(0, 256, (height, width, 3), dtype=np.uint8)
    return cv2.GaussianBlur(noise, (0, 0), 1.0).reshape(height, width, 3)


def test_bilinear_upscaling_known_answer():
    row = np.array([[[0] * 3, [100] * 3]], dtype=np.uint8)  # 1 x 2
    # output centres 0.25, 0.75, 1.25, 1.75 in input pixels; edge taps are dropped, not padded
    assert resize_antialiased(row, (1, 4))[0, :, 0].tolist() == [0, 25, 75, 100]


def test_antialiased_downscaling_known_answer():
    row = np.array([[[0] * 3, [100] * 3, [200] * 3, [40] * 3]], dtype=np.uint8)
    # halving: triangle filter of half-width 2 input pixels; output 0 is centred at 1.0 and sees
    # pixels 0, 1, 2 with weights .75, .75, .25 (/1.75): 125/1.75 = 71.4; output 1 (centre 3.0)
    # sees 1, 2, 3 with .25, .75, .75: 205/1.75 = 117.1
    assert resize_antialiased(row, (1, 2))[0, :, 0].tolist() == [71, 117]


@pytest.mark.parametrize("size", [(1, 1), (37, 11), (256, 128), (300, 97)])
def test_constant_images_stay_constant(size):
    image = np.full((57, 23, 3), (12, 130, 251), dtype=np.uint8)
    resized = resize_antialiased(image, size)
    assert resized.shape == (*size, 3)
    assert (resized == image[0, 0]).all()


@pytest.mark.parametrize("in_size", [(400, 200), (180, 70), (57, 23), (128, 64), (300, 300),
                                     (90, 200), (1000, 40)])
def test_matches_torchvision_antialiased_resize(in_size):
    """train_transform resizes with torchvision: the same filter, at most one level apart."""
    image = _image(*in_size)
    ours = resize_antialiased(image, (256, 128)).astype(int)
    tensor = torch.from_numpy(image).permute(2, 0, 1).contiguous()
    reference = v2.Resize((256, 128), antialias=True)(tensor).permute(1, 2, 0).numpy()
    difference = np.abs(ours - reference.astype(int))
    assert difference.max() <= 1
    assert (difference > 0).mean() < 0.01  # rounding ties only


def test_normalisation_and_channel_order_known_answer():
    crop = np.zeros((10, 6, 3), dtype=np.uint8)
    crop[...] = (10, 20, 30)  # B, G, R
    spec = PreprocessSpec(size_hw=(4, 2))
    batch = preprocess_crops([crop], spec, input_order="BGR")
    assert batch.shape == (1, 3, 4, 2) and batch.dtype == np.float32
    for channel, value in enumerate((30, 20, 10)):  # the model sees R, G, B
        expected = (value / 255 - IMAGENET_MEAN[channel]) / IMAGENET_STD[channel]
        np.testing.assert_allclose(batch[0, channel], expected, rtol=1e-6)
    rgb_model_from_rgb = preprocess_crops([crop[..., ::-1].copy()], spec, input_order="RGB")
    np.testing.assert_array_equal(batch, rgb_model_from_rgb)
    bgr_model = preprocess_crops([crop], PreprocessSpec((4, 2), channel_order="BGR"), "BGR")
    expected_b = (10 / 255 - IMAGENET_MEAN[0]) / IMAGENET_STD[0]  # mean/std follow the model
    np.testing.assert_allclose(bgr_model[0, 0], expected_b, rtol=1e-6)


@pytest.mark.parametrize("input_order", ["BGR", "RGB"])
def test_table_lookup_equals_the_float32_arithmetic_bit_for_bit(input_order):
    spec = PreprocessSpec((16, 8), mean=(0.5, 0.25, 0.1), std=(0.3, 0.2, 0.7), pixel_scale=255)
    crops = [_image(16, 8, seed=seed) for seed in range(3)]  # already at size: no resampling
    pixels = np.stack(crops).astype(np.float32)
    if input_order == "BGR":
        pixels = pixels[..., ::-1]
    mean, std = np.float32(spec.mean), np.float32(spec.std)
    expected = ((pixels / np.float32(255) - mean) / std).transpose(0, 3, 1, 2)
    np.testing.assert_array_equal(preprocess_crops(crops, spec, input_order), expected)


def test_eval_transform_is_exactly_the_shared_function():
    spec = PreprocessSpec(size_hw=(256, 128))
    transform = eval_transform((256, 128))
    for seed, size in enumerate([(311, 140), (64, 30), (256, 128)]):
        image = _image(*size, seed=seed)
        from_tensor = transform(torch.from_numpy(image).permute(2, 0, 1).contiguous())
        assert from_tensor.dtype == torch.float32 and from_tensor.shape == (3, 256, 128)
        assert torch.equal(from_tensor, torch.from_numpy(preprocess_image(image, spec, "RGB")))


def test_eval_transform_agrees_with_the_torchvision_pipeline_it_replaced():
    old = v2.Compose([v2.Resize((256, 128), antialias=True),
                      v2.ToDtype(torch.float32, scale=True),
                      v2.Normalize(IMAGENET_MEAN, IMAGENET_STD)])
    tensor = torch.from_numpy(_image(200, 90, seed=3)).permute(2, 0, 1).contiguous()
    one_level = 1 / 255 / min(IMAGENET_STD) + 1e-5
    assert (old(tensor) - eval_transform((256, 128))(tensor)).abs().max() <= one_level


def test_empty_batch_and_bad_inputs():
    spec = PreprocessSpec(size_hw=(8, 4))
    assert preprocess_crops([], spec).shape == (0, 3, 8, 4)
    with pytest.raises(ValueError, match=r"crop 1 must be an HxWx3 uint8 array"):
        preprocess_crops([np.zeros((4, 4, 3), np.uint8), np.zeros((4, 4), np.uint8)], spec)
    with pytest.raises(ValueError, match="crop 0 is empty"):
        preprocess_crops([np.zeros((0, 4, 3), np.uint8)], spec)
    with pytest.raises(ValueError, match="input_order"):
        preprocess_crops([], spec, input_order="HSV")
    with pytest.raises(ValueError, match="std must be positive"):
        PreprocessSpec((8, 4), std=(0.2, 0.0, 0.2))
    with pytest.raises(ValueError, match="channel order"):
        PreprocessSpec((8, 4), channel_order="GBR")
    with pytest.raises(ValueError, match="positive"):
        PreprocessSpec((0, 4))
