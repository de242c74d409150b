"""pycodestyle over the Cython sources: the style half of cython-lint, run in process.

    python scripts/pycodestyle_cython.py              # every .pyx and .pxd under cython_src/
    python scripts/pycodestyle_cython.py FILE...

cython-lint would run pycodestyle itself, as a program found on PATH, so that a plain
`cython-lint` fails with "No such file or directory: 'pycodestyle'" unless the virtual
environment is activated. pyproject.toml turns that part off (`no-pycodestyle`) and this
script does it instead, with the same settings: the codes cython-lint ignores because
they misread Cython syntax (its own list), plus `[tool.cython-lint]`'s `ignore` and
`max-line-length`. Exits 1 when it finds something.
"""

from __future__ import annotations

import pathlib
import sys

import pycodestyle
from cython_lint.cython_lint import PYCODESTYLE_CODES

if sys.version_info >= (3, 11):
    import tomllib
else:  # (the lint extra brings tomli there)
    import tomli as tomllib

REPO = pathlib.Path(__file__).resolve().parent.parent


def main(argv: list[str]) -> int:
    config = tomllib.loads((REPO / "pyproject.toml").read_text())["tool"]["cython-lint"]
    files = argv or sorted(str(p) for p in (REPO / "cython_src").rglob("*.px[dx]"))
    style = pycodestyle.StyleGuide(
        ignore=sorted(PYCODESTYLE_CODES | set(config.get("ignore", []))),
        max_line_length=config.get("max-line-length", 79),
    )
    return 1 if style.check_files(files).total_errors else 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
