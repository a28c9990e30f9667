"""One line of ``aws check``: a fact about the account, its status and the fix; helpers to read botocore errors."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

OK, WARNING, PROBLEM = "ok", "warning", "problem"
ClientFactory = Callable[[str], Any]  # service name -> boto3 client


@dataclass(frozen=True)
class CheckLine:
    """One fact about the account: its status (ok / warning / problem), what was found, and the fix."""

    name: str
    status: str
    detail: str
    fix: str = ""

    def text(self) -> str:
        """The line as a terminal or the app shows it."""
        mark = {OK: "OK     ", WARNING: "WARNING", PROBLEM: "PROBLEM"}[self.status]
        return f"{mark} {self.name}: {self.detail}" + (f" Fix: {self.fix}" if self.fix else "")


def error_code(exc: BaseException) -> str:
    """The AWS error code of a botocore exception (its class name when it carries none)."""
    response = getattr(exc, "response", None)
    return str(response.get("Error", {}).get("Code", "")) if isinstance(response, dict) else type(exc).__name__


def error_message(exc: BaseException) -> str:
    """The AWS error message of a botocore exception."""
    response = getattr(exc, "response", None)
    if isinstance(response, dict):
        return str(response.get("Error", {}).get("Message", "")) or str(exc)
    return str(exc)
