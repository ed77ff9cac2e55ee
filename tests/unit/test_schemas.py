"""The committed JSON Schemas must be exactly what the models generate."""

from pathlib import Path

from waybill_watch.schemas import SCHEMAS, write_schemas

ROOT = Path(__file__).resolve().parents[2]


def test_committed_schemas_match_the_models(tmp_path: Path) -> None:
    committed = ROOT / "schemas"
    assert sorted(p.name for p in committed.glob("*.schema.json")) == sorted(SCHEMAS)
    assert write_schemas(committed, check=True) == [], "run `make schemas` and commit"


def test_check_mode_reports_a_stale_file_without_writing(tmp_path: Path) -> None:
    write_schemas(tmp_path)
    stale = tmp_path / "anomaly.schema.json"
    stale.write_text("{}\n")
    assert write_schemas(tmp_path, check=True) == ["anomaly.schema.json"]
    assert stale.read_text() == "{}\n"


def test_timestamps_are_declared_as_date_time() -> None:
    text = (ROOT / "schemas" / "anomaly.schema.json").read_text()
    assert '"format": "date-time"' in text
