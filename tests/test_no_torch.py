"""edge/ must run on a line device without torch: importing any edge module must not import it."""

import pkgutil
import subprocess
import sys

import edge


def test_importing_every_edge_module_leaves_torch_out():
    names = [m.name for m in pkgutil.walk_packages(edge.__path__, "edge.") if not m.name.endswith("__main__")]
    code = ("import importlib, sys\n"
            f"for n in {names!r}:\n"
            "    importlib.import_module(n)\n"
            "bad = sorted(m for m in sys.modules if m == 'torch' or m.startswith('torch.'))\n"
            "print(len(bad))\n"
            "sys.exit(1 if bad else 0)\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True)
    assert r.returncode == 0, f"torch was imported by an edge module:\n{r.stdout}{r.stderr}"
    assert len(names) > 15  # the walk really found the package
