"""Write the schema's SDL: `python -m topology.api.graphql.export [PATH]`.

Default PATH is graphql/schema.graphql at the repository root; a test fails
when that file and the code differ, so the contract changes only on purpose.
"""

from __future__ import annotations

import sys
from pathlib import Path

from topology.api.graphql import build_schema
from topology.settings import Settings

DEFAULT_PATH = Path(__file__).resolve().parents[3] / "graphql" / "schema.graphql"


def sdl() -> str:
    return build_schema(Settings()).as_str().rstrip("\n") + "\n"


def main(argv: list[str]) -> int:
    path = Path(argv[0]) if argv else DEFAULT_PATH
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(sdl())
    print(f"wrote {path}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
