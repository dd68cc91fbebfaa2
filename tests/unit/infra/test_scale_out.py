"""`saga up --scale` without engines: scale values are read and refused with the reason, and
each copy of a service has its name and ports (the scaled stack itself runs in
``tests/system/infra/test_scale_out.py``)."""

import json
from pathlib import Path

import pytest

from infra.config.settings import ConfigurationError, Settings
from infra.engines.stack import Stack, StackError, parse_scale, split_instance


def test_scale_values_are_read_and_refused_with_the_reason() -> None:
    assert parse_scale(["payment=2", "inventory=3,shipping=1"]) == {
        "payment": 2,
        "inventory": 3,
        "shipping": 1,
    }
    assert parse_scale([]) == {}
    for bad in ("api=2", "payment", "payment=0", "payment=x", "payment=21"):
        with pytest.raises(ConfigurationError, match="--scale"):
            parse_scale([bad])
    assert split_instance("payment-2") == ("payment", 2)
    assert split_instance("orchestrator") == ("orchestrator", 1)
    assert split_instance("kafka") == ("kafka", 1)


def test_each_copy_has_its_name_and_ports_and_the_scale_is_kept(tmp_path: Path) -> None:
    settings = Settings(
        run_dir=tmp_path,
        kafka_embedded=False,
        temporal_embedded=False,
        schema_registry_embedded=False,
    )
    stack = Stack(settings, say=lambda _: None, scale={"payment": 3})
    assert stack.instances() == [
        "payment",
        "payment-2",
        "payment-3",
        "inventory",
        "shipping",
        "orchestrator",
        "api",
    ]
    assert stack.metrics_urls("payment") == (
        "http://127.0.0.1:8101/metrics",
        "http://127.0.0.1:9101/metrics",
    )
    assert stack.metrics_urls("payment-3") == (
        "http://127.0.0.1:8121/metrics",
        "http://127.0.0.1:9121/metrics",
    )
    assert Settings(instance=2).service_port("payment") == 8111
    assert Settings(instance=2).sdk_metrics_port("orchestrator") == 9114
    assert [s.name for s in stack.status()][:6] == [
        "kafka",
        "temporal",
        "registry",
        "payment",
        "payment-2",
        "payment-3",
    ]
    with_engines = Stack(Settings(run_dir=tmp_path), say=lambda _: None)
    assert with_engines.instances()[:3] == ["kafka", "temporal", "registry"]

    # Ports that two copies would share are refused before anything starts.
    crowded = Settings(run_dir=tmp_path, payment_port=8101, inventory_port=8111)
    with pytest.raises(StackError, match="payment-2 and inventory"):
        Stack(crowded, say=lambda _: None, scale={"payment": 2}).up()
    assert (tmp_path / "scale.json").exists() is False

    (tmp_path / "scale.json").write_text(json.dumps({"payment": 2, "api": 4, "shipping": 0}))
    kept = Stack(settings, say=lambda _: None, scale={"inventory": 2})
    assert kept.scale == {"payment": 2, "inventory": 2, "shipping": 1, "orchestrator": 1}


# -- relays on one database ------------------------------------------------------------------


# -- the scaled stack ------------------------------------------------------------------------
