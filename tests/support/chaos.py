"""What the chaos runs' tests assert of their reports alike."""

from ops.chaos import ChaosReport

__all__ = ["assert_returns_as_made"]


def assert_returns_as_made(report: ChaosReport, made: int) -> None:
    """Every return of the run was asked for, accepted and ended as it was made to, with its
    events; each way of ending happened; the audit's return checks ran and found nothing."""
    returns = report.returns
    assert returns is not None
    assert returns.asked + returns.not_asked == made, (returns.asked, returns.not_asked)
    assert returns.accepted == returns.asked, returns.refused
    assert returns.lost == 0, returns.lost_returns
    assert returns.unexpected == [], returns.unexpected
    ended = {"COMPLETED": returns.completed, "EXPIRED": returns.expired}
    ended["REJECTED"] = returns.rejected
    assert ended == returns.expected, (ended, returns.expected)
    assert min(ended.values()) > 0, ended
    assert returns.other == 0, returns.other
    assert returns.events_seen == returns.events_expected > 0, (
        returns.events_seen,
        returns.events_expected,
    )
    for check in ("over_refunded", "restock_mismatch", "return_refund_mismatch"):
        assert report.audit.counts.get(check) == 0, (check, report.audit.counts)
