"""Local stand-ins for Azure Storage: the Azure Files REST emulator (azfiles/) and Azurite beside it.

No other Azure Files emulator exists (Azurite has Blob, Queue and Table only), so batchai ships its
own, wire-compatible with the Azure SDK and checked against recorded traffic of the real service.
`batchai emulators start` (or `python -m batchai_cli.emulators`) runs both and prints one connection
string naming both endpoints; see emulators/run.py.
"""
