"""Configuration: clear errors that name the key, the value and what is allowed."""

from __future__ import annotations

from pathlib import Path

import pytest

from daemon.config import load_config, parse_config
from daemon.errors import ConfigError
from hil import pki as pkimod
from hil.pki import Pki

GOOD = """
[device]
id = "kiosk-0001"
data_dir = "/var/lib/kiosk"

[api]
url = "https://api.probation.example/"
ca_bundle = "/etc/kiosk/api-ca.pem"
"""


@pytest.fixture(scope="module")
def pki(tmp_path_factory: pytest.TempPathFactory) -> Pki:
    return pkimod.create(tmp_path_factory.mktemp("pki"))


def good(tmp_path: Path, pki: Pki, extra: str = "") -> Path:
    """GOOD, with its CA bundle a real (synthetic) CA certificate."""
    f = tmp_path / "kiosk.toml"
    f.write_text(GOOD.replace("/etc/kiosk/api-ca.pem", str(pki.ca_cert)) + extra)
    return f


def test_good_config_loads_with_defaults(tmp_path: Path, pki: Pki) -> None:
    f = good(tmp_path, pki)
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


def test_disk_levels_default_in_order_and_follow_a_larger_reserve(tmp_path: Path, pki: Pki) -> None:
    out = load_config(good(tmp_path, pki)).outbox
    assert (out.min_free_mb, out.no_photo_mb, out.low_mb) == (64, 256, 1024)
    # a kiosk configured before the levels existed, with a larger reserve, still starts
    out = load_config(good(tmp_path, pki, "\n[outbox]\nmin_free_mb = 2048\n")).outbox
    assert (out.min_free_mb, out.no_photo_mb, out.low_mb) == (2048, 2048, 2048)
    f = good(tmp_path, pki, "\n[outbox]\nno_photo_free_mb = 64\nlow_free_mb = 4096\n")
    out = load_config(f).outbox
    assert (out.no_photo_mb, out.low_mb) == (64, 4096)  # equal to the reserve: photos kept


def _tls_case(tmp_path: Path, pki: Pki, case: str) -> tuple[str, list[str]]:
    """An [api] section for ``case`` and what the error must say."""
    cert, key = pkimod.issue_client_cert(pki, "kiosk-0001", tmp_path / "client")
    other_cert, _other_key = pkimod.issue_client_cert(pki, "kiosk-0002", tmp_path / "other")
    garbage = tmp_path / "garbage.pem"
    garbage.write_text("this is not a certificate\n")
    broken = tmp_path / "broken.pem"
    broken.write_text("-----BEGIN CERTIFICATE-----\nbm90IGEgY2VydA==\n-----END CERTIFICATE-----\n")
    encrypted = tmp_path / "encrypted.key"
    encrypted.write_text("-----BEGIN ENCRYPTED PRIVATE KEY-----\nAA==\n"
                         "-----END ENCRYPTED PRIVATE KEY-----\n")  # fmt: skip
    url = 'url = "https://api.probation.example/"\n'
    cases = {
        "missing ca": (f'ca_bundle = "{tmp_path}/nope.pem"\n',
                       ["api.ca_bundle", f"{tmp_path}/nope.pem", "does not exist", "system's CAs"]),
        "garbage ca": (f'ca_bundle = "{garbage}"\n',
                       ["api.ca_bundle", str(garbage), "not a PEM certificate bundle"]),
        "broken ca": (f'ca_bundle = "{broken}"\n',
                      ["api.ca_bundle", str(broken), "not a usable PEM certificate bundle"]),
        "key as ca": (f'ca_bundle = "{key}"\n', ["api.ca_bundle", "holds a private key"]),
        "directory ca": (f'ca_bundle = "{tmp_path}"\n', ["api.ca_bundle", "cannot be read"]),
        "missing cert": (f'client_cert = "{tmp_path}/c.pem"\nclient_key = "{key}"\n',
                         ["api.client_cert", f"{tmp_path}/c.pem", "does not exist"]),
        "missing key": (f'client_cert = "{cert}"\nclient_key = "{tmp_path}/k.pem"\n',
                        ["api.client_key", f"{tmp_path}/k.pem", "does not exist"]),
        "garbage key": (f'client_cert = "{cert}"\nclient_key = "{garbage}"\n',
                        ["api.client_key", "not a PEM private key"]),
        "encrypted key": (f'client_cert = "{cert}"\nclient_key = "{encrypted}"\n',
                          ["api.client_key", "encrypted", "passphrase"]),
        "wrong pair": (f'client_cert = "{other_cert}"\nclient_key = "{key}"\n',
                       ["api.client_key", "is not the key of api.client_cert"]),
    }  # fmt: skip
    body, says = cases[case]
    return "[api]\n" + url + body, says


TLS_CASES = [
    *("missing ca", "garbage ca", "broken ca", "key as ca", "directory ca"),
    *("missing cert", "missing key", "garbage key", "encrypted key", "wrong pair"),
]


@pytest.mark.parametrize("case", TLS_CASES)
def test_tls_files_are_checked_when_the_configuration_is_loaded(
    tmp_path: Path, pki: Pki, case: str
) -> None:
    api, says = _tls_case(tmp_path, pki, case)
    f = tmp_path / "kiosk.toml"
    f.write_text('[device]\nid = "kiosk-0001"\n' + api)
    with pytest.raises(ConfigError) as err:
        load_config(f)
    for piece in says:
        assert piece in err.value.message, (piece, err.value.message)
    load_config(f, check_files=False)  # kiosk.service does not use them: it still starts


def test_good_tls_files_load(tmp_path: Path, pki: Pki) -> None:
    cert, key = pkimod.issue_client_cert(pki, "kiosk-0001", tmp_path / "client")
    f = good(tmp_path, pki, f'client_cert = "{cert}"\nclient_key = "{key}"\n')
    assert load_config(f).api.client_key == key


def test_kiosk_sync_and_check_config_exit_78_naming_a_missing_ca_bundle_once(
    tmp_path: Path, pki: Pki, capsys: pytest.CaptureFixture[str]
) -> None:
    from daemon.__main__ import main

    f = tmp_path / "kiosk.toml"
    f.write_text(GOOD.replace("/etc/kiosk/api-ca.pem", "/tmp/nope.pem"))
    assert main(["check-config", "--config", str(f)]) == 78
    out, err = capsys.readouterr()
    assert "api.ca_bundle: /tmp/nope.pem does not exist" in err
    assert (out + err).count("does not exist") == 1  # said once, not logged and printed
    assert main(["--config", str(f), "sync"]) == 78  # --config before the command works too
    out, err = capsys.readouterr()
    assert "api.ca_bundle: /tmp/nope.pem does not exist" in err and "Traceback" not in out + err
    f.write_text(GOOD.replace("/etc/kiosk/api-ca.pem", str(pki.ca_cert)))
    assert main(["check-config", "--config", str(f)]) == 0


def test_a_mistyped_section_lists_the_sections(tmp_path: Path) -> None:
    f = tmp_path / "kiosk.toml"
    f.write_text(GOOD.replace("[device]", "[devices]"))
    with pytest.raises(ConfigError) as err:
        load_config(f)
    message = err.value.message
    assert message.startswith("unknown section [devices]; the sections are [api], [camera],")
    assert "[device]" in message and "[staff]" in message and "[]" not in message
