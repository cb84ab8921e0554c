"""The README's Guarantees section names real tests: every `file.py::test_name` it cites exists."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def cited() -> list[tuple[str, str | None]]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Guarantees", 1)[1].split("\n## ", 1)[0]
    out, current = [], None
    for ref in re.findall(r"`([\w./]*(?:\.py)?(?:::\w+)?)`", section):
        file, _, name = ref.partition("::")
        if file.endswith(".py"):
            current = file
        elif file or not name:
            continue  # a config key or a command, not a test
        out.append((current, name or None))
    return out


def test_every_test_the_guarantees_name_exists():
    refs = cited()
    assert len(refs) >= 30
    for file, name in refs:
        path = ROOT / "tests" / file
        assert path.is_file(), f"README Guarantees cite {file}, which does not exist"
        if name:
            assert re.search(rf"^def {name}\(", path.read_text(), re.M), f"{file}::{name} does not exist"
