"""Test a segmentor (or an SCR restorer): applies mmseg_rass.compat, then runs mmseg's own
``tools/test.py`` shipped in the installed mmseg package, with its full command line."""
import os.path as osp
import sys

sys.path.insert(0, osp.dirname(osp.dirname(osp.abspath(__file__))))

from mmseg_rass.tools_entry import run_mmseg_tool  # noqa: E402

if __name__ == '__main__':
    run_mmseg_tool('test.py')
