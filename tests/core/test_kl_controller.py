"""The adaptive KL coefficient (Alg 5.23 step 5) on constructed KL values."""

import math

import pytest

from rlrun.core.kl_controller import AdaptiveKLController


def make(kl_coef: float = 1.0) -> AdaptiveKLController:
    return AdaptiveKLController(kl_coef=kl_coef, kl_target=0.01, kl_tolerance=1.5, kl_adapt_factor=2.0)


def test_kl_below_band_halves_the_coefficient():
    controller = make()
    assert controller.update(0.01 / 1.5 - 1e-6) == -1
    assert controller.kl_coef == 0.5


def test_kl_above_band_doubles_the_coefficient():
    controller = make()
    assert controller.update(0.01 * 1.5 + 1e-6) == 1
    assert controller.kl_coef == 2.0


@pytest.mark.parametrize("kl", [0.01 / 1.5, 0.008, 0.01, 0.012, 0.01 * 1.5])
def test_kl_inside_band_keeps_the_coefficient(kl):
    controller = make()
    assert controller.update(kl) == 0  # band edges included: the rule uses strict inequalities
    assert controller.kl_coef == 1.0


def test_each_update_applies_the_rule_once():
    controller = make(kl_coef=0.3)
    branches = [controller.update(kl) for kl in (0.1, 0.1, 0.0, 0.01, 0.0, 0.0)]
    assert branches == [1, 1, -1, 0, -1, -1]
    assert controller.kl_coef == pytest.approx(0.3 * 4 / 8)


def test_state_dict_round_trip():
    controller = make()
    controller.update(1.0)
    restored = make()
    restored.load_state_dict(controller.state_dict())
    assert restored == controller


@pytest.mark.parametrize("field, value", [
    ("kl_coef", 0.0), ("kl_target", 0.0), ("kl_target", -0.01), ("kl_target", math.nan),
    ("kl_tolerance", 1.0), ("kl_tolerance", 0.5), ("kl_adapt_factor", 1.0), ("kl_adapt_factor", -2.0),
])
def test_bad_arguments_raise_naming_the_field(field, value):
    kwargs = {"kl_coef": 1.0, "kl_target": 0.01, "kl_tolerance": 1.5, "kl_adapt_factor": 2.0, field: value}
    with pytest.raises(ValueError, match=field):
        AdaptiveKLController(**kwargs)

