"""A wire-level Azure Files REST emulator for tests (Azurite has no file service).

from batchai_cli.emulators.azfiles import AzureFilesEmulator

with AzureFilesEmulator(tmp_path) as emu:
    ShareServiceClient.from_connection_string(emu.connection_string)...
"""

from .server import DEFAULT_ACCOUNT, DEFAULT_KEY, AzureFilesEmulator

__all__ = ["DEFAULT_ACCOUNT", "DEFAULT_KEY", "AzureFilesEmulator"]
