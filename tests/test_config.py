import dataclasses

import pytest
import yaml

from bgclean.errors import ConfigError
from bgclean.pipeline.config import CONFIG_DIR, PipelineConfig, load_config


def test_default_yaml_mirrors_the_dataclasses_exactly():
    data = yaml.safe_load((CONFIG_DIR / "default.yaml").read_text())
    assert data == PipelineConfig().to_dict()
    assert load_config(CONFIG_DIR / "default.yaml") == PipelineConfig()


def test_every_bundled_config_loads():
    for path in CONFIG_DIR.glob("*.yaml"):
        load_config(path)
    assert load_config("fast").segment.backend == "yolox+mediapipe.selfie"


def test_unknown_key_names_the_key_and_the_file(tmp_path):
    f = tmp_path / "my.yaml"
    f.write_text("masks:\n  dilation: 3\n")
    with pytest.raises(ConfigError, match=r"my\.yaml.*'dilation'"):
        load_config(f)
    f.write_text("colour: {}\n")
    with pytest.raises(ConfigError, match=r"my\.yaml.*'colour'"):
        load_config(f)


def test_wrong_types_and_ranges_are_errors(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("segment:\n  batch_size: four\n")
    with pytest.raises(ConfigError, match="batch_size must be int"):
        load_config(f)
    f.write_text("masks:\n  threshold: 1.5\n")
    with pytest.raises(ConfigError, match="threshold"):
        load_config(f)
    f.write_text("inpaint:\n  residual_fill: blur\n")
    with pytest.raises(ConfigError, match="residual_fill must be structure, telea or navier-stokes"):
        load_config(f)
    f.write_text("inpaint:\n  hybrid_line_share: 1.5\n")
    with pytest.raises(ConfigError, match="hybrid_line_share must be between 0 and 1"):
        load_config(f)
    with pytest.raises(ConfigError, match="does not exist"):
        load_config(tmp_path / "missing.yaml")


def test_overrides_apply_after_the_file_and_configs_are_frozen(tmp_path):
    f = tmp_path / "c.yaml"
    f.write_text("masks:\n  dilate: 0.05\n")
    cfg = load_config(f, {"masks.dilate_px": 7, "segment.backend": "u2net.small"})
    assert cfg.masks.dilate == 0.05 and cfg.masks.dilate_px == 7 and cfg.segment.backend == "u2net.small"
    assert load_config(None, {"masks.dilate": 0}).masks.dilate == 0.0  # ints widen to float
    with pytest.raises(dataclasses.FrozenInstanceError):
        cfg.masks.dilate = 1
