"""Asserts for the one-line error contract of the CLI, and a content hash of a folder tree."""

from __future__ import annotations

import hashlib
from pathlib import Path


def assert_one_line_error(result, *fragments: str) -> str:
    """Exit 1, exactly one `error: ...` line naming every fragment, no traceback."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), result.exception
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    for fragment in fragments:
        assert fragment in lines[0], (fragment, lines[0])
    return lines[0]


def assert_clean_failure(result: object, fragments: tuple[str, ...]) -> str:
    """Exit 1, no traceback, exactly one `error:` line (the last on stderr) holding every fragment."""
    assert result.exit_code == 1, result.output
    assert result.exception is None or isinstance(result.exception, SystemExit), repr(result.exception)
    assert "Traceback" not in result.output
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert len(errors) == 1, result.stderr
    assert result.stderr.strip().splitlines()[-1] == errors[0]
    for frag in fragments:
        assert frag in errors[0], (frag, errors[0])
    return errors[0]


def tree_hashes(root: Path) -> dict[str, str]:
    """sha256 of every file under `root`, by relative path: inputs are unchanged when this is."""
    return {
        str(f.relative_to(root)): hashlib.sha256(f.read_bytes()).hexdigest()
        for f in sorted(root.rglob("*"))
        if f.is_file()
    }
