"""`batchai configure`: defaults and the subscription id, kept in $BATCHAI_HOME/config."""

from __future__ import annotations


def test_set_list_and_unset_defaults(batchai, home):
    assert batchai("configure", "--defaults", "group=rg", "workspace=ws", "output=table").code == 0
    listing = batchai("configure", "--list-defaults", "-o", "json")
    assert listing.json() == [
        {"name": "group", "source": str(home / "config"), "value": "rg"},
        {"name": "output", "source": str(home / "config"), "value": "table"},
        {"name": "workspace", "source": str(home / "config"), "value": "ws"},
    ]
    # output=table is now the default format; -o wins.
    batchai("workspace", "create", "-n", "ws", "-o", "none")
    assert batchai("workspace", "list").out.splitlines()[0] == "Name  Resource Group  Location  State"
    assert batchai("workspace", "list", "-o", "tsv", "--query", "[].name").out == "ws\n"
    assert batchai("configure", "--defaults", "workspace=", "output=").code == 0
    assert [d["name"] for d in batchai("configure", "-l").json()] == ["group"]


def test_environment_overrides_the_file(batchai, monkeypatch, home):
    batchai("configure", "--defaults", "group=rg")
    monkeypatch.setenv("BATCHAI_DEFAULTS_GROUP", "from-env")
    assert batchai("configure", "-l").json() == [
        {"name": "group", "source": "BATCHAI_DEFAULTS_GROUP", "value": "from-env"}
    ]


def test_bad_defaults_are_usage_errors(batchai, home):
    unknown = batchai("configure", "--defaults", "colour=red")
    assert unknown.code == 2
    assert unknown.err == (
        "ERROR: Unknown default 'colour'. Known defaults: group, workspace, experiment, cluster, location, output.\n"
    )
    assert batchai("configure", "--defaults", "output=xml").code == 2
    assert batchai("configure", "--defaults", "workspace=bad name").code == 2
    not_pair = batchai("configure", "--defaults", "group")
    assert not_pair.code == 2
    assert not_pair.err.startswith("ERROR: 'group' is not NAME=VALUE.")
    # Nothing was written by the failed calls.
    assert batchai("configure", "-l").json() == []


def test_subscription_is_stable_and_settable(batchai, home):
    batchai("workspace", "create", "-g", "rg", "-n", "ws")
    first = batchai("workspace", "show", "-g", "rg", "-n", "ws").json()["id"]
    assert first.startswith("/subscriptions/00000000-0000-0000-0000-000000000000/")
    assert batchai("configure", "--subscription", "11111111-2222-3333-4444-555555555555").code == 0
    # Another subscription sees other resources, as switching accounts in az does.
    assert batchai("workspace", "list").json() == []
    assert batchai("configure", "--subscription", "not valid!").code == 2


def test_generated_subscription_when_none_is_set(batchai, home):
    (home / "config").write_text("")
    created = batchai("workspace", "create", "-g", "rg", "-n", "ws").json()
    sub = created["id"].split("/")[2]
    assert len(sub) == 36
    assert f"subscription = {sub}" in (home / "config").read_text()
    assert batchai("workspace", "show", "-g", "rg", "-n", "ws").json()["id"] == created["id"]


def test_a_broken_settings_file_is_reported(batchai, home):
    (home / "config").write_text("this is not ini\n")
    result = batchai("workspace", "list")
    assert result.code == 1
    assert result.err.startswith(f"ERROR: The settings file {home / 'config'} is not valid:")
    assert "Traceback" not in result.err


def test_the_shared_folder_is_a_setting_and_an_environment_variable(batchai, home, tmp_path, monkeypatch):
    from batchai_cli import settings

    monkeypatch.delenv("BATCHAI_SHARED_DIR", raising=False)
    assert settings.shared_root() == str(home / "shared")
    assert batchai("configure", "--shared-dir", str(tmp_path / "nfs")).code == 0
    assert "shared_dir = " + str(tmp_path / "nfs") in (home / "config").read_text()
    assert settings.shared_root() == str(tmp_path / "nfs")
    monkeypatch.setenv("BATCHAI_SHARED_DIR", str(tmp_path / "lustre"))
    assert settings.shared_root() == str(tmp_path / "lustre")
    monkeypatch.delenv("BATCHAI_SHARED_DIR")
    assert batchai("configure", "--shared-dir", "").code == 0
    assert settings.shared_root() == str(home / "shared")
