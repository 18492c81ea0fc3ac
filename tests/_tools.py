"""Load a script of the repository (``tools/``, ``demo/``, a test fixture) as a module, to call its functions.

The scripts are no package modules, so the tests load them from their files: ``from _tools import load_tool`` (the
``tests/`` folder is on ``sys.path`` through ``tests/conftest.py``, as pytest imports it).
"""

import importlib.util
import os.path as osp
from types import ModuleType
from typing import Optional

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))


def load_tool(path: str, name: Optional[str] = None) -> ModuleType:
    """Execute the script at ``path`` (relative to the repository root, or absolute) and return it as a module.

    Every call runs the file again and returns a new module, which is not put in ``sys.modules`` (its
    ``if __name__ == '__main__'`` block does not run). ``name`` is the module's ``__name__``; default: the file name
    without ``.py``.
    """
    name = name or osp.splitext(osp.basename(path))[0]
    spec = importlib.util.spec_from_file_location(name, osp.join(ROOT, path))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module
