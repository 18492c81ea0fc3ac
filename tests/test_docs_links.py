"""Every relative link of README.md and docs/*.md names a file or folder of the repository."""

import glob
import os.path as osp
import re

import pytest

ROOT = osp.dirname(osp.dirname(osp.abspath(__file__)))
#: ``[text](target)`` and ``![alt](target "title")``; the target ends at whitespace or ``)``
#: a ``docs/<name>.md`` path named in text (not the tail of a longer path)
DOC_PATH = re.compile(r'(?<![\w/.])docs/[\w/.-]+\.md')
LINK = re.compile(r'\]\(\s*([^)\s]+)(?:\s+"[^"]*")?\s*\)')


def relative_links(text):
    """The link targets of markdown ``text`` that are paths (no URL scheme, no in-page ``#anchor``), anchors cut."""
    targets = []
    for target in LINK.findall(text):
        if re.match(r'^[a-zA-Z][\w+.-]*:', target) or target.startswith('#'):
            continue
        targets.append(target.split('#', 1)[0])
    return targets


def test_relative_links_finds_paths_only():
    text = '[a](docs/x.md) [b](https://x.org/y) [c](#top) [d](../y.md#sec) ![e](img/p.png "t") [f](mailto:a@b.c)'
    assert relative_links(text) == ['docs/x.md', '../y.md', 'img/p.png']


@pytest.mark.parametrize(
    'doc', ['README.md'] + sorted(osp.relpath(p, ROOT) for p in glob.glob(osp.join(ROOT, 'docs', '*.md')))
)
def test_relative_links_resolve(doc):
    path = osp.join(ROOT, doc)
    with open(path, encoding='utf-8') as f:
        text = f.read()
    missing = [t for t in relative_links(text) if not osp.exists(osp.normpath(osp.join(osp.dirname(path), t)))]
    assert not missing, f'{doc}: links to files that are not in the repository: {missing}'


def test_cited_documents_exist():
    """Docs and docstrings cite no document under ``../shared/`` (beside the checkout, not in the repository), and
    every ``docs/<name>.md`` they name exists."""
    files = (
        ['README.md']
        + glob.glob(osp.join(ROOT, 'docs', '*.md'))
        + [p for d in ('projects', 'tools', 'demo') for p in glob.glob(osp.join(ROOT, d, '**', '*.py'), recursive=True)]
    )
    hits = []
    for path in files:
        with open(osp.join(ROOT, path), encoding='utf-8') as f:
            hits += [
                osp.relpath(osp.join(ROOT, path), ROOT)
                for line in f
                if re.search(r'\.\./shared/\S*\.md', line)
                or any(not osp.exists(osp.join(ROOT, d)) for d in DOC_PATH.findall(line))
            ]
    assert not hits, f'documents not in the repository cited in {sorted(set(hits))}'
