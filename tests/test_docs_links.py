"""The docs stand alone: no pointer to files outside the repository."""
import glob
import os.path as osp
import re

import pytest

DOCS = ['README.md'] + sorted(osp.relpath(p, osp.dirname(osp.dirname(osp.abspath(__file__))))
                              for p in glob.glob(osp.join(osp.dirname(osp.dirname(
                                  osp.abspath(__file__))), 'docs', '*.md')))
OUTSIDE = re.compile(r'/work/|\.\./shared|shared/(DESIGN|papers)')
# relative paths in links and inline code: [x](path), `path`
PATHS = re.compile(r'\]\(([^)\s]+)\)|`(\.\.?/[^`\s]+)`')


@pytest.mark.parametrize('doc', DOCS)
def test_docs_point_only_inside_the_repository(doc, repo_root):
    text = open(osp.join(repo_root, doc), encoding='utf-8').read()
    assert not OUTSIDE.search(text), f'{doc}: {OUTSIDE.search(text).group(0)!r}'
    folder = osp.dirname(osp.join(repo_root, doc))
    for link, code in PATHS.findall(text):
        path = (link or code).split('#')[0]
        if not path or re.match(r'[a-z]+://', path) or path.startswith('mailto:'):
            continue
        target = osp.normpath(osp.join(folder, path))
        assert target.startswith(osp.normpath(repo_root) + osp.sep), f'{doc}: {path}'
        if link:  # a Markdown link must resolve
            assert osp.exists(target), f'{doc}: broken link {path}'
