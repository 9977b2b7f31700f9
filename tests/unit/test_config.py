from pathlib import Path

import pytest
from dicom_ops.config import SETTINGS, SettingsError, load_settings, parse_size


def test_defaults_match_the_documented_embedded_setup():
    settings = load_settings({})
    assert settings.data_root == Path("var")
    assert settings.db_url.startswith("sqlite:///") and settings.db_url.endswith(
        "var/dicom_ops.sqlite")
    assert settings.ae_title == "DRAWCLIENT"
    assert (settings.listener_host, settings.listener_port) == ("127.0.0.1", 11112)
    assert settings.quiet_seconds == 30
    assert settings.min_free_disk == 5 * 2**30
    assert (settings.export_interval_minutes, settings.import_interval_minutes,
            settings.cleanup_interval_hours) == (10, 15, 24)
    assert settings.templates_dir.name == "templates"


def test_environment_overrides_defaults():
    settings = load_settings({
        "DICOM_OPS_DATA_ROOT": "/srv/dicom",
        "DICOM_OPS_ALLOWED_AETS": "CT1, PACS ,TPS",
        "DICOM_OPS_DB_URL": "postgresql://u:p%40ss@db/dicom_ops",
        "DICOM_OPS_WATCH_FOLDERS": "/a,/b",
    })
    assert settings.data_root == Path("/srv/dicom")
    assert settings.allowed_aets == ("CT1", "PACS", "TPS")
    assert settings.db_url == "postgresql://u:p%40ss@db/dicom_ops"
    assert settings.watch_folders == (Path("/a"), Path("/b"))
    assert settings.datastore_dir == Path("/srv/dicom/datastore")


def test_db_url_defaults_under_the_data_root():
    settings = load_settings({"DICOM_OPS_DATA_ROOT": "/srv/dicom"})
    assert settings.db_url == "sqlite:////srv/dicom/dicom_ops.sqlite"


@pytest.mark.parametrize(
    ("variable", "value", "expected"),
    [
        ("DICOM_OPS_LISTENER_PORT", "eleven", "an integer 1-65535"),
        ("DICOM_OPS_LISTENER_PORT", "70000", "an integer 1-65535"),
        ("DICOM_OPS_AE_TITLE", "A_TITLE_LONGER_THAN_16", "1-16 ASCII characters"),
        ("DICOM_OPS_QUIET_SECONDS", "0", "an integer 1-86400"),
        ("DICOM_OPS_DB_URL", "mysql://x/y", "a sqlite:/// or postgresql:// URL"),
        ("DICOM_OPS_MIN_FREE_DISK", "lots", "a size such as 5GiB"),
        ("DICOM_OPS_UID_ROOT", "1.2.abc", "a UID prefix"),
        ("DICOM_OPS_LOG_LEVEL", "LOUD", "DEBUG, INFO, WARNING or ERROR"),
    ],
)
def test_bad_value_names_the_variable_and_what_was_expected(variable, value, expected):
    with pytest.raises(SettingsError) as error:
        load_settings({variable: value})
    assert variable in str(error.value)
    assert expected in str(error.value)


def test_all_bad_values_are_reported_at_once():
    with pytest.raises(SettingsError) as error:
        load_settings({"DICOM_OPS_LISTENER_PORT": "x", "DICOM_OPS_QUIET_SECONDS": "y"})
    assert "DICOM_OPS_LISTENER_PORT" in str(error.value)
    assert "DICOM_OPS_QUIET_SECONDS" in str(error.value)


def test_secret_key_value_never_appears_in_errors():
    settings = load_settings({"DICOM_OPS_SECRET_KEY": "tiny-k3y"})
    with pytest.raises(SettingsError) as error:
        settings.require_secret_key()
    assert "DICOM_OPS_SECRET_KEY" in str(error.value)
    assert "tiny-k3y" not in str(error.value)


def test_missing_secret_key_is_a_clear_error_only_when_needed():
    settings = load_settings({})
    with pytest.raises(SettingsError, match="DICOM_OPS_SECRET_KEY is not set"):
        settings.require_secret_key()


def test_tls_needs_both_certificate_and_key():
    with pytest.raises(SettingsError, match="TLS_CERT and DICOM_OPS_TLS_KEY"):
        load_settings({"DICOM_OPS_TLS_CERT": "/etc/cert.pem"})


@pytest.mark.parametrize(("text", "size"), [("5GiB", 5 * 2**30), ("500MiB", 500 * 2**20),
                                            ("1024", 1024), ("2 GB", 2 * 10**9)])
def test_sizes_parse_with_units(text, size):
    assert parse_size(text) == size


def test_every_setting_has_help_and_expectation():
    for setting in SETTINGS:
        assert setting.help and setting.expected, setting.name
        assert setting.env.startswith("DICOM_OPS_")


def test_a_mistyped_variable_is_an_error_that_suggests_the_right_name():
    with pytest.raises(SettingsError) as error:
        load_settings({"DICOM_OPS_QUIET_SECOND": "5"})
    assert "DICOM_OPS_QUIET_SECOND is not a dicom-ops setting" in str(error.value)
    assert "did you mean DICOM_OPS_QUIET_SECONDS?" in str(error.value)
