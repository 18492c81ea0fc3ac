"""Data-layer tests build transforms by name from the mmseg registry scope (as configs do)."""

import pytest


@pytest.fixture(autouse=True)
def _mmseg_scope():
    from mmengine.registry import init_default_scope

    init_default_scope('mmseg')
    yield
