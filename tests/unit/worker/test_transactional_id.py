"""Under exactly-once a restarted worker reuses its ``transactional.id``, so it fences and
aborts the transaction its crashed predecessor left open instead of waiting for it to time out.

Found by the cluster kill loop (tests/integration/test_kill_loop_cluster.py): with quix-streams'
random id per process, a worker SIGKILLed mid-checkpoint left its restart unable to read its own
internal topics for ``transaction.timeout.ms`` (60 s; 66 s measured from restart to processing).
"""

from __future__ import annotations

from pathlib import Path

from waybill_watch.settings import Settings
from waybill_watch.worker.app import INSTANCE_FILE, instance_id, producer_config


def _settings(data_dir: Path, guarantee: str) -> Settings:
    return Settings(data_dir=data_dir, processing_guarantee=guarantee)  # type: ignore[arg-type]


def test_exactly_once_id_survives_a_restart(tmp_path: Path) -> None:
    first = producer_config(_settings(tmp_path / "w", "exactly-once"), "p.waybill-watch")
    again = producer_config(_settings(tmp_path / "w", "exactly-once"), "p.waybill-watch")
    assert first["transactional.id"] == again["transactional.id"]
    assert first["transactional.id"].startswith("p.waybill-watch-")
    assert (tmp_path / "w" / INSTANCE_FILE).read_text().strip() in first["transactional.id"]


def test_each_data_dir_is_its_own_instance(tmp_path: Path) -> None:
    one = producer_config(_settings(tmp_path / "a", "exactly-once"), "g")
    two = producer_config(_settings(tmp_path / "b", "exactly-once"), "g")
    assert one["transactional.id"] != two["transactional.id"]


def test_at_least_once_has_no_transactional_id(tmp_path: Path) -> None:
    config = producer_config(_settings(tmp_path / "w", "at-least-once"), "g")
    assert "transactional.id" not in config
    assert not (tmp_path / "w").exists(), "nothing is written without exactly-once"


def test_an_empty_id_file_is_replaced(tmp_path: Path) -> None:
    tmp_path.joinpath(INSTANCE_FILE).write_text("")
    made = instance_id(tmp_path)
    assert made and instance_id(tmp_path) == made
