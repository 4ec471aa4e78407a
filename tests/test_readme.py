"""The README's set-up commands and its interactive example are real: the example runs as written."""

import re
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_opens_with_the_install_and_test_commands():
    first_block = re.search(r"```bash\n(.*?)```", README.read_text(), re.S).group(1).splitlines()
    assert first_block[0].startswith("pip install -e . && mld reproduce")
    assert first_block[1].startswith('pip install -e ".[test]" && python -m pytest -q')
    ci = (README.parent / ".ci" / "run").read_text()
    assert 'python -m pip install -q -e ".[test]"' in ci and "python -m pytest -q" in ci


def test_readme_interactive_example_runs(capsys):
    code = re.search(r"```python\n(.*?)```", README.read_text(), re.S).group(1)
    namespace = {}
    exec(compile(code, str(README), "exec"), namespace)
    model = namespace["model"]
    assert model.steps == 22 and len(namespace["table"]) == 23
    assert namespace["phi"].shape[0] == 2 and namespace["dphi"].shape[-1] == 3
    assert "H" in capsys.readouterr().out
