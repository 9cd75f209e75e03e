"""Shared pytest configuration. Service fixtures live in tests/fixtures/ and are listed here."""

pytest_plugins: list[str] = []
