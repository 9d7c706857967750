"""The state file: atomic replacement, and a damaged file refused with one line."""
from __future__ import annotations

import json
import os

import pytest
from tenancy_fixtures import new_intent, reload

from l3fab.tenancy import IntentError, store


@pytest.fixture
def intent(tmp_path):
    i = new_intent(tmp_path)
    i.create_tenant("blue", 100)
    i.add_endpoint("web0", "blue", "tap0", ipv4="10.0.0.5")
    return i


def _leftovers(directory):
    return sorted(p.name for p in directory.iterdir() if ".tmp-" in p.name)


def test_missing_file_is_an_empty_intent_and_nothing_is_written(tmp_path):
    i = new_intent(tmp_path)
    assert (i.tenants(), i.endpoints()) == ((), ())
    assert not i.path.exists()


def test_crash_at_rename_keeps_the_old_file(intent, monkeypatch):
    old = intent.path.read_bytes()
    before = intent.to_dict()

    def rename_fails(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(store.os, "replace", rename_fails)
    with pytest.raises(IntentError,
                       match=r"^state-file: '.*intent.json' could not be written: No space left on device$"):
        intent.add_endpoint("web1", "blue", "tap1", ipv4="10.0.0.6")
    monkeypatch.undo()
    assert intent.path.read_bytes() == old
    assert intent.to_dict() == before  # memory not advanced either
    assert _leftovers(intent.path.parent) == []
    assert reload(intent).to_dict() == before


def test_crash_mid_write_keeps_the_old_file(intent, monkeypatch):
    old = intent.path.read_bytes()
    real_write = os.write
    calls = []

    def write_half_then_die(fd, data):
        if calls:
            raise KeyboardInterrupt  # the process is killed mid-write
        calls.append(1)
        return real_write(fd, bytes(data[: len(data) // 2]))

    monkeypatch.setattr(store.os, "write", write_half_then_die)
    with pytest.raises(KeyboardInterrupt):
        intent.create_tenant("red", 200)
    monkeypatch.undo()
    assert intent.path.read_bytes() == old
    assert [t.name for t in intent.tenants()] == ["blue"]
    assert _leftovers(intent.path.parent) == []


def test_crash_at_fsync_keeps_the_old_file(intent, monkeypatch):
    old = intent.path.read_bytes()

    def fsync_fails(fd):
        raise OSError(5, "Input/output error")

    monkeypatch.setattr(store.os, "fsync", fsync_fails)
    with pytest.raises(IntentError, match="could not be written: Input/output error$"):
        intent.remove_endpoint("web0")
    monkeypatch.undo()
    assert intent.path.read_bytes() == old
    assert [e.name for e in intent.endpoints()] == ["web0"]


def test_write_fsyncs_file_and_directory_before_and_after_rename(intent, monkeypatch):
    events = []
    real_fsync, real_replace = os.fsync, os.replace
    monkeypatch.setattr(store.os, "fsync", lambda fd: (events.append(("fsync", os.path.isdir(f"/proc/self/fd/{fd}"))),
                                                       real_fsync(fd))[1])
    monkeypatch.setattr(store.os, "replace", lambda a, b: (events.append(("rename", None)), real_replace(a, b))[1])
    intent.create_tenant("red", 200)
    assert events == [("fsync", False), ("rename", None), ("fsync", True)]


def test_file_is_readable_json_with_allocations(intent):
    data = json.loads(intent.path.read_text())
    assert data["format"] == "l3fab-intent" and data["version"] == 1
    assert data["tenants"] == [{"name": "blue", "vni": 100, "families": "dual-stack", "peers": [],
                                "table": 1000, "rd_number": 100}]
    assert data["endpoints"][0]["sid4_index"] == 0x100
    assert data["counters"] == {"next_sid_index": 0x101, "next_table": 1001}


@pytest.mark.parametrize("edit, message", [
    (lambda d: d.update(format="other"), r"\.format: 'other' is not 'l3fab-intent'$"),
    (lambda d: d.update(version=9), r"\.version: 9 is not supported \(this l3fab reads 1\)$"),
    (lambda d: d["tenants"][0].update(vni="x"), r"\.tenants\[0\]\.vni: 'x' is not an integer$"),
    (lambda d: d["endpoints"][0].update(tenant="ghost"), r"^endpoints\[web0\]\.tenant: 'ghost' is not a tenant$"),
    (lambda d: d["endpoints"][0].update(sid4_index=3),
     r"^endpoints\[web0\]\.sid4: 3 is not a SID index inside locator"),
    (lambda d: d["endpoints"][1].update(sid4_index=0x100),
     r"^endpoints\[web1\]\.sid4: 256 is also a SID of endpoint 'web0'$"),
    (lambda d: d["tenants"][1].update(table=1000), r"^tenants\[red\]\.table: 1000 is also the table of tenant 'blue'$"),
    (lambda d: d["tenants"][1].update(vni=100), r"^tenants\[blue\]\.vni: 100 is already used by tenant 'red'$"),
])
def test_damaged_state_file_is_refused_with_one_line(intent, edit, message):
    intent.create_tenant("red", 200)
    intent.add_endpoint("web1", "red", "tap1", ipv4="10.0.0.5")
    data = json.loads(intent.path.read_text())
    edit(data)
    intent.path.write_text(json.dumps(data))
    with pytest.raises(IntentError) as err:
        reload(intent)
    assert "\n" not in str(err.value)
    assert err.match(message)


def test_truncated_json_is_refused(intent):
    intent.path.write_text(intent.path.read_text()[:40])
    with pytest.raises(IntentError, match=r"^state-file: '.*' is not valid JSON: "):
        reload(intent)
