"""README's first screen gives the two fresh-machine commands, and CI runs the same test command."""

from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent


def _commands(text: str) -> list[str]:
    return [ln.strip() for ln in text.splitlines() if ln.strip().startswith("bash scripts/setup.sh")]


def test_ci_runs_the_readme_test_command():
    readme = (ROOT / "README.md").read_text(encoding="utf-8")
    first_screen = "\n".join(readme.splitlines()[:30])
    demo, tests = _commands(first_screen)[:2]
    assert demo.endswith("-m rag_news.demo") and "pytest" in tests
    assert tests in _commands((ROOT / ".ci" / "run").read_text(encoding="utf-8"))
