"""The ClickHouse seam: clickhouse-connect's errors become ours by the server's error code — poison (the data's fault:
dead-letter it) or unavailable (keep the data, retry). Checked on the mapping itself and against the real engine."""

from __future__ import annotations

import pytest
from clickhouse_connect.driver.exceptions import DatabaseError, DataError, OperationalError, ProgrammingError

from attrib.errors import DependencyUnavailable, Permanent
from sinks import clickhouse
from sinks.clickhouse import OUTAGE_CODES, POISON_CODES, ClickHouseRejected, ClickHouseUnavailable
from tests.sinks.helpers import warehouse
from tests.support import free_port


@pytest.mark.parametrize(("exc", "kind", "name"), [
    (DatabaseError("Code: 53. DB::Exception: Type mismatch", code=53), ClickHouseRejected, "TYPE_MISMATCH"),
    (DatabaseError("Code: 6. Cannot parse text", code=6, name="CANNOT_PARSE_TEXT"), ClickHouseRejected,
     "CANNOT_PARSE_TEXT"),
    (DatabaseError("Code: 407. Decimal convert overflow", code=407), ClickHouseRejected, "DECIMAL_OVERFLOW"),
    (DatabaseError("Code: 241. Memory limit exceeded", code=241), ClickHouseUnavailable, "MEMORY_LIMIT_EXCEEDED"),
    (DatabaseError("Code: 252. Too many parts", code=252), ClickHouseUnavailable, "TOO_MANY_PARTS"),
    (DatabaseError("Code: 60. Table x does not exist", code=60), ClickHouseUnavailable, "UNKNOWN_TABLE"),
    (DatabaseError("Code: 9999. Something new", code=9999), ClickHouseUnavailable, None),  # unknown: keep the data
    (DatabaseError("HTTP driver received HTTP status 502"), ClickHouseUnavailable, None),  # a proxy, no code
    (OperationalError("Error executing HTTP request"), ClickHouseUnavailable, None),  # transport
    (ConnectionRefusedError(111, "Connection refused"), ClickHouseUnavailable, None),
    (ProgrammingError("Unable to open the chdb engine at '/x': held"), ClickHouseUnavailable, None),
    (DataError("Unable to create native array for column `a`"), ClickHouseRejected, None),  # client conversion
    (ValueError("invalid literal for int() with base 10: 'x'"), ClickHouseRejected, None),
    (DatabaseError("Code: 1001. std::exception. type: avro::Exception, e.what() = EOF reached", code=1001),
     ClickHouseRejected, None),  # the engine's Avro reader threw on these bytes
    (DatabaseError("Code: 1001. std::exception. type: std::bad_alloc", code=1001), ClickHouseUnavailable, None),
])
def test_server_codes_decide_poison_or_outage(exc, kind, name):
    got = clickhouse.mapped(exc)
    assert type(got) is kind and got.name == name
    assert isinstance(got, Permanent if kind is ClickHouseRejected else DependencyUnavailable)
    assert str(exc).split()[0] in str(got)  # the message survives (it is what the operator reads)


def test_the_code_tables_name_codes_as_the_engine_does_and_do_not_overlap(make_settings):
    assert not set(POISON_CODES) & set(OUTAGE_CODES)
    client = warehouse(make_settings())
    codes = sorted({**POISON_CODES, **OUTAGE_CODES})
    names = dict(client.query("SELECT number, errorCodeToName(toUInt32(number)) FROM system.numbers "
                              "WHERE number IN {codes:Array(UInt32)} LIMIT {n:UInt32}",
                              parameters={"codes": codes, "n": len(codes)}).result_rows)
    assert names == {**POISON_CODES, **OUTAGE_CODES}
    client.close()


def test_the_real_engine_refusing_data_is_poison_and_a_missing_table_is_an_outage(make_settings):
    s = make_settings()
    db = s.clickhouse.database
    client = warehouse(s)
    client.command(f"CREATE TABLE {db}.probe (n UInt8, s String) ENGINE = MergeTree ORDER BY n")
    with pytest.raises(ClickHouseRejected) as refused, clickhouse.calls():
        client.raw_insert(f"{db}.probe", insert_block=b"not-a-number,x\n", fmt="CSV")
    assert refused.value.code in POISON_CODES
    with pytest.raises(ClickHouseRejected):  # the client cannot convert the value: the row's fault too
        clickhouse.insert(client, f"{db}.probe", [["x", "s"]], column_names=["n", "s"])
    with pytest.raises(ClickHouseUnavailable) as missing:
        clickhouse.insert(client, f"{db}.nope", [[1, "s"]], column_names=["n", "s"])
    assert (missing.value.code, missing.value.name) == (60, "UNKNOWN_TABLE")
    clickhouse.insert(client, f"{db}.probe", [[1, "s"]], column_names=["n", "s"])  # and good rows load
    assert client.query(f"SELECT n, s FROM {db}.probe").result_rows == [(1, "s")]
    client.close()


def test_a_server_that_does_not_answer_is_unavailable(make_settings):
    s = make_settings(clickhouse={"url": f"http://127.0.0.1:{free_port()}"})
    with pytest.raises(ClickHouseUnavailable):
        clickhouse.connect(s)
