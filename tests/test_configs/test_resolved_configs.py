"""Every config under ``configs/`` resolves to the reference in ``tests/test_configs/configs_resolved.json``.

The reference was written from the configs before they were restructured (one augmented pipeline, inheritance
instead of ``{{_base_.x}}`` snippets). A resolved config may differ from it only by the changes listed in
``expected_changes``; anything else (a lost key, a changed value, a list turned into a tuple) fails.
"""
import json

import pytest
from resolved_configs import REFERENCE, config_files, resolve

with open(REFERENCE) as fh:
    REFERENCE_CONFIGS = json.load(fh)

MISSING = '<missing>'


def flat_diff(old, new, prefix=''):
    """``{dotted key: (old value, new value)}`` for every leaf where ``old`` and ``new`` differ."""
    if isinstance(old, dict) and isinstance(new, dict):
        out = {}
        for key in sorted(set(old) | set(new)):
            path = f'{prefix}.{key}' if prefix else key
            out.update(flat_diff(old.get(key, MISSING), new.get(key, MISSING), path))
        return out
    if isinstance(old, list) and isinstance(new, list) and len(old) == len(new):
        out = {}
        for i, (a, b) in enumerate(zip(old, new)):
            out.update(flat_diff(a, b, f'{prefix}[{i}]'))
        return out
    return {} if old == new else {prefix: (old, new)}


def expected_changes(name: str) -> dict:
    """The intended differences of config ``name`` from the reference: ``{dotted key: (old, new)}``."""
    return {}


def test_reference_lists_every_config():
    assert sorted(REFERENCE_CONFIGS) == config_files()


@pytest.mark.parametrize('name', config_files())
def test_resolved_config_matches_reference(name):
    assert flat_diff(REFERENCE_CONFIGS[name], resolve(name)) == expected_changes(name)


def test_flat_diff_names_changed_leaves():
    old = {'model': {'a': 1, 'b': [1, {'c': 2}], 'd': {'__tuple__': [1, 2]}}}
    new = {'model': {'b': [1, {'c': 3}], 'd': [1, 2], 'e': 0}}
    assert flat_diff(old, new) == {
        'model.a': (1, MISSING), 'model.b[1].c': (2, 3), 'model.d': ({'__tuple__': [1, 2]}, [1, 2]),
        'model.e': (MISSING, 0)}
