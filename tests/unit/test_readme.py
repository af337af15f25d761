"""The README's test-driver example runs as written."""

from __future__ import annotations

import re
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"


def test_the_test_driver_example_passes() -> None:
    section = README.read_text().split("## Testing your app", 1)[1]
    code = re.search(r"```python\n(.*?)```", section, re.S)
    assert code is not None, "the section has no python example"
    namespace: dict[str, object] = {}
    exec(compile(code.group(1), "README.md", "exec"), namespace)
    test = namespace["test_counts_per_card_and_minute"]
    assert callable(test)
    test()
