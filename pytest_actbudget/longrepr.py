"""The failure report of a test the plugin failed: the whole message under FAILURES,
its first line in pytest's short test summary.

A plain-string ``longrepr`` is repeated whole in the short summary when pytest runs on
CI (``CI`` or ``BUILD_NUMBER`` set) or with ``-vv``, so a violation table would be
printed twice. An exception representation carries a one-line ``reprcrash`` for the
summary (and for ``--tb=line`` and junitxml's message), and survives xdist's report
serialization.
"""

from __future__ import annotations

from _pytest._code.code import ReprExceptionInfo, ReprFileLocation, ReprTracebackNative

__all__ = ["failure_longrepr"]


def failure_longrepr(text: str, path: str, lineno: int) -> ReprExceptionInfo:
    """``text`` whole for the FAILURES section; its first line, at ``path:lineno`` (the
    test's location, 1-based), for the one-line summaries."""
    headline = text.strip().splitlines()[0] if text.strip() else text
    body = text if text.endswith("\n") else text + "\n"
    return ReprExceptionInfo(
        reprtraceback=ReprTracebackNative([body]),
        reprcrash=ReprFileLocation(path=path, lineno=lineno, message=headline),
    )
