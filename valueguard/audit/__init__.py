"""Auditing logs: one reader per log format, the streaming runner, the summary and the HTML report."""

from valueguard.audit.records import BadLine, Turn
from valueguard.audit.runner import AuditResult, run_audit

__all__ = ["AuditResult", "BadLine", "Turn", "run_audit"]
