"""DataConfig refuses nonsensical values up front, with the constraint in the message."""

import pytest
from pydantic import ValidationError

from edgetl.data.dataset import DataConfig
from edgetl.errors import ConfigError


@pytest.mark.parametrize(
    ("field", "value", "says"),
    [
        ("val_fraction", 0, "greater than 0"),
        ("val_fraction", 1.0, "less than 1"),
        ("val_fraction", -0.1, "greater than 0"),
        ("val_fraction", float("nan"), "less than 1"),
        ("test_fraction", 1.5, "less than 1"),
        ("calib_size", 0, "greater than or equal to 1"),
        ("calib_size", -3, "greater than or equal to 1"),
        ("calib_size", True, "boolean"),
        ("limit_train", 0, "greater than or equal to 1"),
        ("limit_val", -1, "greater than or equal to 1"),
        ("limit_test", 0, "greater than or equal to 1"),
        ("seed", -1, "greater than or equal to 0"),
        ("seed", 1.5, "integer"),
        ("source", "", "not blanks"),
        ("source", "   ", "not blanks"),
        ("augment", "rotate", "'crop-flip'"),
    ],
)
def test_nonsensical_values_are_rejected(field, value, says):
    with pytest.raises(ValidationError) as exc:
        DataConfig(**{field: value})
    (err,) = exc.value.errors()
    assert err["loc"] == (field,) and says in str(exc.value)


def test_the_config_path_turns_them_into_a_config_error_naming_the_key():
    from edgetl.config import build_config

    with pytest.raises(
        ConfigError, match=r"calib_size: Input should be greater than or equal to 1 \(got 0\)"
    ):
        build_config(DataConfig, {}, {"calib_size": 0}, "data.yaml")


def test_sane_values_still_pass():
    cfg = DataConfig(source="builtin:digits", seed=3, val_fraction=0.2, calib_size=1, limit_train=10)
    assert cfg.split_spec().limit_train == 10
