"""The training task's config check, called directly."""

from __future__ import annotations

import pytest
import torch

from nercc.tasks.train import check_config
from nercc.utils.errors import ConfigError


def test_check_config_returns_the_checked_model(compose_config):
    cfg = compose_config("train", ["data=synthetic", "logger=none"])
    module = check_config(cfg)
    size = int(cfg.data.image_size)
    with torch.no_grad():
        logits = module.net(torch.zeros(2, int(cfg.data.channels), size, size))
    assert tuple(logits.shape) == (2, int(cfg.data.num_classes))


def test_check_config_refuses_images_the_model_cannot_take(compose_config):
    cfg = compose_config("train", ["data=synthetic", "logger=none", "data.image_size=4"])
    with pytest.raises(ConfigError) as error:
        check_config(cfg)
    assert error.value.key == "model" and "image_size must be at least 12" in str(error.value)
