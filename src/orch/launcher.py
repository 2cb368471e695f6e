"""The workers' `orch`: a lean launcher in ``.orch/bin`` put first on every worker's PATH.

Agents and their hooks are the callers of the hot path (`orch -`, later `orch hook`). pip's console script imports
``re`` and Python's ``site`` before orch even starts; this launcher runs the same interpreter with ``-S`` and orch's
package folder on ``sys.path``, and loads ``site`` only for the other commands (entry.py does that).
"""

import os
import sys

TEMPLATE = """#!{python} -S
# written by orch (launcher.py): orch's hot path without site/re start-up cost
import sys
sys.path.insert(0, {pkg_parent!r})
from orch.entry import main
sys.exit(main())
"""


def bin_dir(state_dir: str) -> str:
    return os.path.join(state_dir, "bin")


def ensure(state_dir: str) -> str:
    """Write (or refresh) ``<state>/bin/orch``; returns the folder to put on PATH."""
    import orch

    folder = bin_dir(state_dir)
    path = os.path.join(folder, "orch")
    pkg_parent = os.path.dirname(os.path.dirname(os.path.abspath(orch.__file__)))
    text = TEMPLATE.format(python=sys.executable, pkg_parent=pkg_parent)
    try:
        with open(path, encoding="utf-8") as fh:
            if fh.read() == text:
                return folder
    except OSError:
        pass
    compile_package(os.path.dirname(os.path.abspath(orch.__file__)))
    os.makedirs(folder, exist_ok=True)
    tmp = f"{path}.{os.getpid()}.tmp"
    with open(tmp, "w", encoding="utf-8") as fh:
        fh.write(text)
    os.chmod(tmp, 0o755)
    os.replace(tmp, path)
    return folder


def compile_package(folder: str) -> None:
    """Byte-compile orch's own modules once. With PYTHONDONTWRITEBYTECODE set (common in containers and CI), an
    editable install would otherwise compile every module from source on every call: half of `orch -`'s time.
    Reading compiled files is not affected by that setting; a folder orch may not write to is left as it is."""
    import compileall

    try:
        compileall.compile_dir(folder, quiet=2, force=False)
    except OSError:
        pass
