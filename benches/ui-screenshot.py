#!/usr/bin/env python3
"""Screenshot of a trace in the real Perfetto UI as a person would set it up: times shown in
UTC ("Realtime (UTC)" in the UI's time format menu) and every track group expanded, nested
ones included. Used for the README's picture and to check what the UI shows.

Runs ui-check (../shared/tools/perfetto-ui) in-process, with two changes made before its page
loads: the UI's stored settings select the UTC time format, and its "expand the first N
groups" step expands all groups at any depth.

Usage: benches/ui-screenshot.py TRACE PNG [ui-check options, e.g. --size 1400x900]
Env:   UI_CHECK_DIR  where ui_check.py is (default ../shared/tools/perfetto-ui)
Run with ui-check's Python (it has playwright):
    ~/.cache/perfetto-ui-venv/bin/python benches/ui-screenshot.py t.pftrace t.png
"""

import os
import pathlib
import sys

ROOT = pathlib.Path(__file__).resolve().parent.parent
UI_CHECK_DIR = os.environ.get("UI_CHECK_DIR", str(ROOT.parent / "shared/tools/perfetto-ui"))
sys.path.insert(0, UI_CHECK_DIR)

import ui_check  # noqa: E402
from playwright.sync_api._generated import BrowserContext, Page  # noqa: E402

UTC_SETTINGS = (
    "localStorage.setItem('perfettoSettings', JSON.stringify({timestampFormat: 'utc'}));"
)
EXPAND_ALL = """() => { let k = 0;
  const expand = (node) => {
    for (const t of node.children) {
      if (t.hasChildren) { if (!t.expanded) { t.expand(); k++; } expand(t); }
    }
  };
  expand(window.app.trace.workspace);
  if (window.raf) window.raf.scheduleFullRedraw();
  return k; }"""

new_page = BrowserContext.new_page
evaluate = Page.evaluate


def new_page_in_utc(self, *args, **kwargs):
    page = new_page(self, *args, **kwargs)
    page.add_init_script(UTC_SETTINGS)
    return page


def evaluate_expanding_all(self, expression, arg=None):
    if "ws.children" in expression:
        return evaluate(self, EXPAND_ALL)
    return evaluate(self, expression, arg)


BrowserContext.new_page = new_page_in_utc
Page.evaluate = evaluate_expanding_all

if __name__ == "__main__":
    if len(sys.argv) < 3:
        sys.exit(__doc__)
    trace, png, *rest = sys.argv[1:]
    sys.argv = [sys.argv[0], trace, "--screenshot", png, *rest]
    sys.exit(ui_check.main())
