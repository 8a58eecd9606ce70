"""Execute the ```python blocks of a Markdown page verbatim, in order, as a reader pasting them
into IPython would, and check what their comments claim.

    python tests/docs/run_python_blocks.py docs/tutorial/simulated-campaign.md

Every top-level statement of every block runs in one namespace (one interpreter, the working
directory the caller chose). A statement's trailing comment (or, if it has none, the comment
on the line right below it) is a claim that is checked:

- ``# SomeError: ...`` or ``# FailedStatus ... caused by OutOfLimitsError: ...``: the statement
  must raise, and every exception name the comment gives (words ending in ``Error`` or
  ``Exception``, and ``FailedStatus``) must be the type, or a base of the type, of an exception
  in the raised one's chain (``__cause__``/``__context__``). The run goes on.
- ``# <Python literal>`` after an expression (``# 'success'``, ``# ('a', 'b')``), optionally
  followed by ``: explanation``: the value must equal the literal. ``...`` as a list's last
  item, or at the end of a string, means "and more": the value must start with the rest.

Any other exception stops the run. Exit status 0 when every statement ran and every claim
held; 1 otherwise, with the block, line and statement on stderr. When the namespace holds a
``Session`` named ``s`` at the end (a run cut short), it is closed, so no twin outlives us.
"""

from __future__ import annotations

import ast
import io
import re
import sys
import tokenize
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

FENCE = re.compile(r"^```python[^\n]*\n(.*?)^```", re.DOTALL | re.MULTILINE)
ERROR_NAME = re.compile(r"\b(\w+(?:Error|Exception)|FailedStatus)\b")


@dataclass
class Statement:
    """One top-level statement of a block and the claim of its trailing comment."""

    block: int
    line: int
    source: str
    node: ast.stmt
    comment: str


class ClaimError(AssertionError):
    """A statement did not do what its comment says."""


def python_blocks(markdown: str) -> list[tuple[int, str]]:
    """Return ``(first line number, code)`` of each ```python block, in order."""
    blocks = []
    for match in FENCE.finditer(markdown):
        first = markdown.count("\n", 0, match.start(1)) + 1
        blocks.append((first, match.group(1)))
    return blocks


def _comments(code: str) -> dict[int, str]:
    """Return the comment ending each line (1-based line number -> text after ``#``)."""
    found = {}
    for tok in tokenize.generate_tokens(io.StringIO(code).readline):
        if tok.type == tokenize.COMMENT:
            found[tok.start[0]] = tok.string.lstrip("#").strip()
    return found


def statements(block: int, first_line: int, code: str) -> list[Statement]:
    """Split a block into its top-level statements, each with its claim: the comment ending
    its last line or, if none, the comment on the line right below it (where IPython would
    show the output)."""
    tree = ast.parse(code)
    comments = _comments(code)
    lines = code.splitlines()
    out = []
    for node in tree.body:
        end = node.end_lineno or node.lineno
        comment = comments.get(end, "")
        below = lines[end].lstrip() if end < len(lines) else ""
        if not comment and below.startswith("#"):
            comment = comments.get(end + 1, "")
        source = ast.get_source_segment(code, node) or ""
        line = first_line + node.lineno - 1
        out.append(Statement(block, line, source, node, comment))
    return out


def expected_errors(comment: str) -> list[str]:
    """Return the exception names a comment that starts with one gives (empty: none)."""
    return ERROR_NAME.findall(comment) if ERROR_NAME.match(comment) else []


def claimed_value(comment: str) -> tuple[bool, Any]:
    """Return ``(True, value)`` if the comment starts with a Python literal, else
    ``(False, None)``."""
    candidates = [comment, comment.split(": ", 1)[0], comment.split("  ", 1)[0]]
    for text in candidates:
        try:
            return True, ast.literal_eval(text.strip())
        except (ValueError, SyntaxError, TypeError, MemoryError, RecursionError):
            continue
    return False, None


def matches(value: Any, claim: Any) -> bool:
    """Compare a value with a claimed literal (``...`` at the end means "and more")."""
    if isinstance(claim, str) and claim.endswith("..."):
        return isinstance(value, str) and value.startswith(claim[:-3])
    if isinstance(claim, list | tuple) and claim and claim[-1] is Ellipsis:
        head = list(claim[:-1])
        return isinstance(value, list | tuple) and list(value)[: len(head)] == head
    if isinstance(claim, tuple) and isinstance(value, tuple) and len(claim) == len(value):
        return all(matches(v, c) for v, c in zip(value, claim, strict=True))
    return bool(value == claim)


def _chain_names(exc: BaseException) -> set[str]:
    names: set[str] = set()
    seen: set[int] = set()
    todo: list[BaseException | None] = [exc]
    while todo:
        e = todo.pop()
        if e is None or id(e) in seen:
            continue
        seen.add(id(e))
        names.update(cls.__name__ for cls in type(e).__mro__)
        todo += [e.__cause__, e.__context__]
    return names


def run_statement(st: Statement, namespace: dict[str, Any]) -> None:
    """Run one statement and check its claim; raise :class:`ClaimError` if it fails."""
    where = f"block {st.block}, line {st.line}: {st.source.splitlines()[0]}"
    errors = expected_errors(st.comment)
    is_expr = isinstance(st.node, ast.Expr)
    try:
        if is_expr:
            code = compile(ast.Expression(st.node.value), f"<{where}>", "eval")  # type: ignore[attr-defined]
            value = eval(code, namespace)
        else:
            exec(compile(ast.Module([st.node], []), f"<{where}>", "exec"), namespace)
            value = None
    except Exception as exc:
        if not errors:
            raise ClaimError(f"{where}\n  raised {type(exc).__name__}: {exc}") from exc
        missing = [name for name in errors if name not in _chain_names(exc)]
        if missing:
            raise ClaimError(
                f"{where}\n  raised {type(exc).__name__}: {exc}\n  the comment says {missing}"
            ) from exc
        return
    if errors:
        raise ClaimError(f"{where}\n  raised nothing; the comment says {errors}")
    if is_expr and st.comment:
        ok, claim = claimed_value(st.comment)
        if ok and not matches(value, claim):
            raise ClaimError(f"{where}\n  gave {value!r}; the comment says {claim!r}")


def run_page(path: Path) -> int:
    """Run every python block of ``path``; return the number of statements run."""
    text = path.read_text(encoding="utf-8")
    namespace: dict[str, Any] = {"__name__": "__main__"}
    count = 0
    try:
        for i, (first, code) in enumerate(python_blocks(text), start=1):
            for st in statements(i, first, code):
                run_statement(st, namespace)
                count += 1
    finally:
        session = namespace.get("s")
        if session is not None and type(session).__name__ == "Session":
            try:
                session.close()
            except Exception:
                traceback.print_exc()
    return count


def main(argv: list[str]) -> int:
    """Run the page named on the command line; print what failed."""
    (page,) = argv
    try:
        count = run_page(Path(page))
    except ClaimError as exc:
        print(f"{page}: {exc}", file=sys.stderr)
        if exc.__cause__ is not None:
            traceback.print_exception(exc.__cause__, file=sys.stderr)
        return 1
    print(f"{page}: {count} statements ran, every claim held")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
