"""Configuration: clear errors that name the key, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import load_config, parse_config
from daemon.errors import ConfigError

GOOD = """
[device]
id = "kiosk-0001"
data_dir = "/var/lib/kiosk"

[api]
url = "https://api.probation.example/"
ca_bundle = "/etc/kiosk/api-ca.pem"
"""


def test_good_config_loads_with_defaults(tmp_path: Path) -> None:
    f = tmp_path / "kiosk.toml"
    f.write_text(GOOD)
    cfg = load_config(f)
    assert cfg.device.id == "kiosk-0001"
    assert cfg.device.key_path == Path("/var/lib/kiosk/device-key.pem")
    assert cfg.api.batch_size == 200
    assert cfg.ui.port == 8088


@pytest.mark.parametrize(
    ("toml", "must_say"),
    [
        (GOOD + "\n[outbox]\nmin_free_md = 10\n", ["outbox.min_free_md", "min_free_mb"]),
        (GOOD.replace("https://", "http://"), ["api.url", "https"]),
        (GOOD + "\n[ui]\nport = 80\n", ["ui", "port = 80", "1024..65535"]),
        (GOOD + "\n[outbox]\nkeep_acked_days = -1\n", ["keep_acked_days = -1", "0..3650"]),
        (GOOD + "\n[ui]\nport = 'x'\n", ["ui.port", "'x'", "an integer"]),
        (GOOD + "\n[staff]\nwarn_after_s = 5\n", ["warn_after_s = 5", "20..600"]),
        (GOOD.replace('"kiosk-0001"', '"kiosk 1!"'), ["device.id", "kiosk 1!"]),
        (GOOD + "\n[device2]\n", ["device2"]),
        (GOOD.replace('id = "kiosk-0001"', ""), ["device.id"]),
        (GOOD + '\n[api]\nkey_alg = "RS256"\n', ["TOML"]),
        (
            '[device]\nid = "k"\nkey_alg = "RS256"\n[api]\nurl = "https://a/"\n',
            ["device.key_alg", "'RS256'", "'ES256'", "'EdDSA'"],
        ),
        ("this is = = not toml", ["not valid TOML"]),
        (GOOD + '\n[privacy]\nnotice = "<script>"\n', ["privacy.notice", "web address"]),
        (GOOD + f'\n[privacy]\nnotice = "{"x" * 61}"\n', ["privacy.notice", "at most 60"]),
        (GOOD + '\n[privacy]\nnotice_cy = "gov.uk/cy"\n', ["privacy.notice_cy", "set notice"]),
        (GOOD + "\n[privacy]\nnotice = 5\n", ["privacy.notice", "a string"]),
        (GOOD + '\n[privacy]\nurl = "x"\n', ["privacy.url", "notice"]),
        (
            GOOD + "\n[outbox]\nmin_free_mb = 64\nno_photo_free_mb = 32\n",
            ["outbox.no_photo_free_mb = 32", ">= min_free_mb (64)"],
        ),
        (
            GOOD + "\n[outbox]\nno_photo_free_mb = 512\nlow_free_mb = 300\n",
            ["outbox.low_free_mb = 300", ">= no_photo_free_mb (512)"],
        ),
    ],
)
def test_bad_config_names_key_value_and_allowed(
    tmp_path: Path, toml: str, must_say: list[str]
) -> None:
    f = tmp_path / "kiosk.toml"
    f.write_text(toml)
    with pytest.raises(ConfigError) as err:
        load_config(f)
    for piece in must_say:
        assert piece in str(err.value), (piece, str(err.value))


def test_the_privacy_notice_for_the_slip_in_each_language() -> None:
    base = {"device": {"id": "k"}, "api": {"url": "https://a/"}}
    unset = parse_config(base).privacy
    assert (unset.where("en"), unset.where("cy")) == ("", "")  # the slip: ask at reception
    one = parse_config(base | {"privacy": {"notice": "gov.uk/probation-privacy"}}).privacy
    assert one.where("cy") == one.where("en") == "gov.uk/probation-privacy"
    both = {"notice": "https://example.gov.uk/privacy", "notice_cy": "0300 123 4567"}
    two = parse_config(base | {"privacy": both}).privacy
    assert (two.where("en"), two.where("cy")) == ("https://example.gov.uk/privacy", "0300 123 4567")


def test_missing_file_says_what_to_do(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="kioskctl provision"):
        load_config(tmp_path / "nope.toml")


def test_client_cert_needs_key() -> None:
    with pytest.raises(ConfigError, match="client_key"):
        parse_config({"device": {"id": "k"}, "api": {"url": "https://a/", "client_cert": "/c"}})


def test_simulated_hardware_must_be_allowed_explicitly() -> None:
    table = {
        "device": {"id": "k"},
        "api": {"url": "https://a/"},
        "camera": {"backend": "simulated"},
    }
    with pytest.raises(ConfigError, match="allow_simulated"):
        parse_config(table)
    table["device"]["allow_simulated"] = True  # type: ignore[index]
    assert parse_config(table).simulated_parts == ["camera"]


def test_driver_sections_are_validated_too() -> None:
    with pytest.raises(ConfigError, match=r"fingerprint\.bad_key"):
        parse_config({"device": {"id": "k"}, "api": {"url": "https://a/"},
                      "fingerprint": {"bad_key": 1}})  # fmt: skip
    with pytest.raises(ConfigError, match=r"fingerprint\.baud"):
        parse_config({"device": {"id": "k"}, "api": {"url": "https://a/"},
                      "fingerprint": {"baud": 12345}})  # fmt: skip


def test_disk_levels_default_in_order_and_follow_a_larger_reserve(tmp_path: Path) -> None:
    f = tmp_path / "kiosk.toml"
    f.write_text(GOOD)
    out = load_config(f).outbox
    assert (out.min_free_mb, out.no_photo_mb, out.low_mb) == (64, 256, 1024)
    # a kiosk configured before the levels existed, with a larger reserve, still starts
    f.write_text(GOOD + "\n[outbox]\nmin_free_mb = 2048\n")
    out = load_config(f).outbox
    assert (out.min_free_mb, out.no_photo_mb, out.low_mb) == (2048, 2048, 2048)
    f.write_text(GOOD + "\n[outbox]\nno_photo_free_mb = 64\nlow_free_mb = 4096\n")
    out = load_config(f).outbox
    assert (out.no_photo_mb, out.low_mb) == (64, 4096)  # equal to the reserve: photos kept
