"""The minimum torch version, checked when grm_ros is imported (one line naming the installed version)."""

import pytest

from grm_ros import MIN_TORCH, require_torch


@pytest.mark.parametrize("installed", ["2.1.0", "2.13.0+cpu", "2.5.1+cu121", "3.0.0a0"])
def test_suitable_versions_pass(installed):
    require_torch(installed)


@pytest.mark.parametrize("installed", ["1.13.1", "2.0.1+cpu", "2.0.0a0+gitabc"])
def test_an_older_torch_is_refused_with_one_line_naming_it_and_the_fix(installed):
    with pytest.raises(ImportError) as err:
        require_torch(installed)
    message = str(err.value)
    assert "\n" not in message
    assert f"found torch {installed}" in message
    assert f"pip install 'torch>={MIN_TORCH[0]}.{MIN_TORCH[1]}'" in message
    assert "--skip-keys python3-torch" in message
