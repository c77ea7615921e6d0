import dataclasses

import pytest
import yaml

from bgclean.errors import ConfigError
from bgclean.pipeline.config import (
    CONFIG_DIR,
    PipelineConfig,
    default_yaml,
    load_config,
)
from bgclean.settings import settings_of
from bgclean.stages.inpaint import INPAINT_BACKENDS


def test_default_yaml_mirrors_the_dataclasses_exactly():
    data = yaml.safe_load((CONFIG_DIR / "default.yaml").read_text())
    assert data == PipelineConfig().to_dict()
    assert load_config(CONFIG_DIR / "default.yaml") == PipelineConfig()


def test_the_shipped_default_yaml_is_the_one_the_schema_generates():
    assert (CONFIG_DIR / "default.yaml").read_text() == default_yaml(), (
        "regenerate: python -m bgclean.pipeline.config > bgclean/configs/default.yaml")


def test_every_setting_is_described_and_its_default_allowed():
    cfg = PipelineConfig()
    for section in dataclasses.fields(cfg):
        fields = dataclasses.fields(getattr(cfg, section.name))
        described = settings_of(getattr(cfg, section.name))
        assert [f.name for f in fields] == [name for name, _ in described], section.name
        for name, s in described:
            assert len(s.doc) > 10 and s.allows(getattr(getattr(cfg, section.name), name)), (section.name, name)


def test_the_listed_choices_are_what_the_stages_know():
    from bgclean.stages.inpaint import BACKENDS
    from bgclean.stages.segment import segmenter_names

    assert set(INPAINT_BACKENDS) == set(BACKENDS) | {"auto"}  # auto picks among them per video
    for name in segmenter_names():
        assert load_config(None, {"segment.backend": name.replace("<session>", "u2net")})
    with pytest.raises(ConfigError, match="segment.backend must be one of yolox"):
        load_config(None, {"segment.backend": "yolo"})


def test_a_renamed_key_is_still_read_with_a_warning(tmp_path, caplog):
    f = tmp_path / "old.yaml"
    f.write_text("segment:\n  belongings: 0.5\npropagate:\n  unchanged: 0\n")
    cfg = load_config(f)
    assert cfg.segment.belongings_score == 0.5 and cfg.propagate.unchanged_tolerance == 0
    assert "segment.belongings is now called segment.belongings_score" in caplog.text


def test_settings_that_bound_each_other_are_checked_together():
    with pytest.raises(ConfigError, match=r"segment.det_keep \(0.5\) must not exceed det_threshold"):
        load_config(None, {"segment.det_keep": 0.5})
    with pytest.raises(ConfigError, match="masks.threshold_low"):
        load_config(None, {"masks.threshold_low": 0.9})


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
    with pytest.raises(ConfigError, match="residual_fill must be one of structure | telea | navier-stokes"):
        load_config(f)
    f.write_text("inpaint:\n  hybrid_line_share: 1.5\n")
    with pytest.raises(ConfigError, match=r"hybrid_line_share must be in \[0, 1\], got 1.5"):
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
