"""Canonical, JSON-able form of every resolved config under ``configs/`` (``_base_`` files excluded).

``python tests/test_configs/resolved_configs.py`` rewrites ``configs_resolved.json`` next to it from the current tree;
the test in ``test_resolved_configs.py`` compares every config against that file.
"""

import json
import os.path as osp
import sys
from glob import glob

from mmengine.config import Config

ROOT = osp.abspath(osp.join(osp.dirname(__file__), '..', '..'))
REFERENCE = osp.join(osp.dirname(osp.abspath(__file__)), 'configs_resolved.json')


def canonical(value):
    """``value`` with tuples marked (``{'__tuple__': [...]}``) so that JSON keeps them apart from lists."""
    if isinstance(value, dict):
        return {str(k): canonical(v) for k, v in value.items()}
    if isinstance(value, tuple):
        return {'__tuple__': [canonical(v) for v in value]}
    if isinstance(value, list):
        return [canonical(v) for v in value]
    return value


def config_files() -> list:
    """Every config under ``configs/`` except the ``_base_`` files, as paths relative to the repository root."""
    files = glob(osp.join(ROOT, 'configs', '**', '*.py'), recursive=True)
    return sorted(osp.relpath(f, ROOT) for f in files if '_base_' not in osp.relpath(f, ROOT).split(osp.sep))


def resolve(rel_path: str) -> dict:
    """The canonical dict of the config at ``rel_path`` (relative to the repository root)."""
    return canonical(Config.fromfile(osp.join(ROOT, rel_path)).to_dict())


def main() -> None:
    resolved = {f: resolve(f) for f in config_files()}
    # one line per config, so that a diff of the reference names the configs that changed
    lines = [
        f'{json.dumps(name)}:{json.dumps(cfg, sort_keys=True, separators=(",", ":"))}' for name, cfg in resolved.items()
    ]
    with open(REFERENCE, 'w') as fh:
        fh.write('{\n' + ',\n'.join(lines) + '\n}\n')
    print(f'{len(resolved)} configs -> {REFERENCE}', file=sys.stderr)


if __name__ == '__main__':
    main()
