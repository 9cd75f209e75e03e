"""Write the generated files: `python scripts/generate.py readme|completions`."""

import sys
from pathlib import Path

from batchai_cli.cli.reference import SHELLS, completion_script, readme_with_reference

ROOT = Path(__file__).resolve().parent.parent


def main(what: str) -> None:
    if what == "readme":
        path = ROOT / "README.md"
        path.write_text(readme_with_reference(path.read_text(encoding="utf-8")), encoding="utf-8")
        print(f"wrote {path}")
    elif what == "completions":
        for shell in SHELLS:
            path = ROOT / "completions" / f"batchai.{shell}"
            path.write_text(completion_script(shell), encoding="utf-8")
            print(f"wrote {path}")
    else:
        sys.exit(f"usage: {sys.argv[0]} readme|completions")


if __name__ == "__main__":
    main(sys.argv[1] if len(sys.argv) > 1 else "")
