"""The commands' options come from their own arguments, field by field."""

from pathlib import Path

import pytest

from cli.chaos import options_from
from cli.main import _parser
from ops.bench import BenchOptions
from ops.chaos import ChaosOptions
from ops.chaos.soak import SoakOptions


def test_bench_options_take_every_argument_of_the_same_name() -> None:
    arguments = [
        "bench", "--orders", "7", "--concurrency", "3", "--records", "900", "--skip-bare",
        "--bare-dispatch-wait", "0.5", "--report-dir", "/tmp/r", "--profile",
        "--rate", "7.5", "--paced-orders", "40",
    ]  # fmt: skip
    args = _parser().parse_args(arguments)
    assert options_from(BenchOptions, args) == BenchOptions(
        orders=7,
        concurrency=3,
        bare_dispatch_wait=0.5,
        records=900,
        rate=7.5,
        paced_orders=40,
        skip_bare=True,
        profile=True,
        report_dir=Path("/tmp/r"),
    )


def test_bench_rate_is_a_positive_number_or_auto(capsys: pytest.CaptureFixture[str]) -> None:
    parse = _parser().parse_args
    assert parse(["bench", "--rate", "auto"]).rate == "auto"
    assert parse(["bench"]).rate is None
    for wrong in ("0", "-2", "fast", "inf"):
        with pytest.raises(SystemExit):
            parse(["bench", "--rate", wrong])
        assert "--rate" in capsys.readouterr().err


def test_given_values_win_and_fields_without_an_argument_keep_their_default() -> None:
    args = _parser().parse_args(["chaos", "--orders", "12", "--seed", "5", "--timeout", "90"])
    options = options_from(ChaosOptions, args, kills=("payment",), timeout_s=args.timeout)
    assert (options.orders, options.seed, options.kills, options.timeout_s) == (
        12,
        5,
        ("payment",),
        90.0,
    )
    assert options.down_s == ChaosOptions().down_s  # no --down argument: the default

    soak = options_from(SoakOptions, _parser().parse_args(["soak", "--orders", "30"]))
    assert (soak.orders, soak.timeout_s) == (30, SoakOptions().timeout_s)


def test_the_share_of_returns_reaches_the_chaos_run() -> None:
    parse = _parser().parse_args
    assert options_from(ChaosOptions, parse(["chaos", "--returns", "0.5"])).returns == 0.5
    assert options_from(ChaosOptions, parse(["chaos"])).returns == ChaosOptions().returns
