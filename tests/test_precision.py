"""training.precision=auto: bfloat16 only where the probe measured it faster on this machine."""

import json

import pytest

from src.models import precision


def _probe_file(tmp_path, speedup, machine=None):
    path = tmp_path / "experiments" / "precision_probe.json"
    path.parent.mkdir(parents=True, exist_ok=True)
    key = machine or precision.machine()
    path.write_text(json.dumps({key: {"speedup": speedup, "date": "2026-11-26 06:00:00"}}))
    return path


@pytest.mark.parametrize(
    ("speedup", "policy"), [(0.58, "float32"), (1.1, "float32"), (2.3, "mixed_bfloat16")]
)
def test_auto_follows_this_machine_s_measurement(tmp_path, speedup, policy):
    chosen, how = precision.choose("auto", _probe_file(tmp_path, speedup))
    assert chosen == policy
    assert f"{speedup:.2f}x float32" in how and "measured 2026-11-26" in how


def test_a_set_precision_is_kept_without_a_probe(tmp_path):
    path = tmp_path / "probe.json"
    for policy in ("float32", "mixed_bfloat16"):
        assert precision.choose(policy, path) == (policy, "set")
    assert not path.exists()


def test_the_probe_measures_once_per_machine_and_keeps_other_machines(tmp_path):
    path = _probe_file(tmp_path, 9.0, machine="another CPU | 64 cpus | tensorflow 0.0")
    chosen, how = precision.choose("auto", path)  # not this machine's: measured now
    assert "measured now" in how
    stored = json.loads(path.read_text())
    assert set(stored) == {"another CPU | 64 cpus | tensorflow 0.0", precision.machine()}
    speedup = stored[precision.machine()]["speedup"]
    assert speedup > 0 and chosen == ("mixed_bfloat16" if speedup >= precision.FASTER else "float32")
    again, how = precision.choose("auto", path)  # now read back, not measured
    assert again == chosen and f"{speedup:.2f}x" in how and str(path) in how


def test_an_unreadable_probe_file_is_measured_again(tmp_path, caplog):
    path = tmp_path / "probe.json"
    path.write_text("{not json")
    chosen, how = precision.choose("auto", path)
    assert "measured now" in how and "unreadable" in caplog.text
    assert precision.machine() in json.loads(path.read_text())
