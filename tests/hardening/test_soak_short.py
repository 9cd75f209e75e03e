"""The short form of `make soak`'s load run, inside `make test`: a few jobs writing numbered lines
while CLI loops list and stream; every byte arrives (SHA-256), no job is stuck, state.db is intact."""

from __future__ import annotations

from tests.hardening.soak import run_load


def test_jobs_under_load_lose_no_byte(tmp_path):
    result = run_load(tmp_path, jobs=3, seconds=3, rate=20_000, readers=2)
    assert result.stuck == []
    assert result.succeeded == 3
    assert result.bytes_expected >= 3 * 40_000
    assert result.mismatched == []
    assert result.bytes_lost == 0
    assert result.integrity == "ok"
    assert result.reader_calls > 0
    assert result.reader_errors == []
