"""`python -m batchai_cli` runs the command line."""

from batchai_cli.cli import main

if __name__ == "__main__":
    main()
