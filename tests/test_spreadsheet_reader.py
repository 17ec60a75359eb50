"""Tests for the streaming CSV/XLSX reader, on hand-made files written byte by byte."""

from __future__ import annotations

import csv
import io
import os
import re
import zipfile
from datetime import datetime
from pathlib import Path

import openpyxl
import pytest
from crmsync.connectors.spreadsheet import reader
from crmsync.connectors.spreadsheet.reader import SheetRow, open_table
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from crmsync.errors import InputError

FIXTURES = Path(__file__).parent / "fixtures" / "spreadsheets"


def write(tmp_path: Path, name: str, data: bytes | str, encoding: str = "utf-8") -> Path:
    path = tmp_path / name
    path.write_bytes(data if isinstance(data, bytes) else data.encode(encoding))
    return path


def read_all(path: Path, **kwargs) -> tuple[reader.Table, list[SheetRow]]:
    with open_table(path, **kwargs) as table:
        rows = list(table)
    return table, rows


# ------------------------------------------------------------------ encodings


def test_utf8_plain(tmp_path):
    table, rows = read_all(write(tmp_path, "a.csv", "Name,City\nPeña,Málaga\n"))
    assert table.encoding == "utf-8"
    assert rows[0].values == {"Name": "Peña", "City": "Málaga"}


def test_utf8_bom_never_leaks_into_first_header(tmp_path):
    path = write(tmp_path, "a.csv", "\ufeffName,City\nJosé,Cádiz\n")
    table, rows = read_all(path)
    assert table.encoding == "utf-8-sig"
    assert table.headers == ["Name", "City"]
    assert rows[0].values["Name"] == "José"
    # Even when the caller forces plain UTF-8, the BOM is not content.
    assert read_all(path, encoding="utf-8")[0].headers == ["Name", "City"]


def test_utf16_excel_unicode_text_fixture():
    table, rows = read_all(FIXTURES / "excel_unicode_text.txt")
    assert (table.encoding, table.delimiter) == ("utf-16", "\t")
    assert table.headers == ["Nombre", "Empresa", "Importe", "Nota"]
    assert rows[0].values == {
        "Nombre": "José Peña",
        "Empresa": "Café Ñandú S.L.",
        "Importe": "1.500,00 €",
        "Nota": "¿Sí? ¡Olé!",
    }
    assert rows[1].values["Empresa"] == "Борис & Co"
    assert rows[1].values["Nota"] == "dos\r\nlíneas"
    assert [r.line for r in rows] == [2, 3]


def test_utf16_without_bom_is_recognised(tmp_path):
    path = write(tmp_path, "a.csv", "Name\tCity\r\nPeña\tMálaga\r\n".encode("utf-16-le"))
    table, rows = read_all(path)
    assert table.encoding == "utf-16-le"
    assert rows[0].values == {"Name": "Peña", "City": "Málaga"}


def test_cp1252_spanish_fixture_comes_back_exactly():
    table, rows = read_all(FIXTURES / "cp1252_spanish.csv")
    assert (table.encoding, table.delimiter) == ("cp1252", ";")
    assert [r.values for r in rows] == [
        {"Nombre": "Peña", "Ciudad": "Málaga", "Importe": "1.234,56 €", "Nota": "¿Qué tal?"},
        {"Nombre": "José", "Ciudad": "Cádiz", "Importe": "0,99 €", "Nota": "¡Olé! pingüino"},
        {"Nombre": "Café Ñandú", "Ciudad": "Logroño", "Importe": "", "Nota": ""},
    ]
    assert table.blank_rows == 1
    assert not any(r.encoding_error for r in rows)


def test_short_cp1252_sample_still_cp1252(tmp_path):
    # charset-normalizer alone answers cp1250 or cp1125 for samples this short.
    for text in ("name,city\nJosé,Café\n", "a,b\n€,x\n", "Nombre,Nota\nPeña,¿Qué? ¡Sí! ü\n"):
        table, rows = read_all(write(tmp_path, "a.csv", text, "cp1252"))
        assert table.encoding == "cp1252", text
        assert "".join(f"{k},{v}\n" for r in rows for k, v in r.values.items()).count("\n") >= 1
        assert list(rows[0].values.values()) == text.splitlines()[1].split(",")


def test_cyrillic_cp1251_is_not_forced_to_cp1252(tmp_path):
    text = "Имя;Город;Компания\nИван Петров;Москва;Ромашка\nПётр Иванов;Санкт-Петербург;Берёзка\n" * 3
    table, rows = read_all(write(tmp_path, "a.csv", text, "cp1251"))
    assert table.encoding == "cp1251"
    assert rows[0].values["Город"] == "Москва"


def test_explicit_encoding_overrides_detection(tmp_path):
    path = write(tmp_path, "a.csv", "a,b\nx,\u00e9\n", "latin-1")
    assert read_all(path, encoding="latin-1")[0].encoding == "iso8859-1"
    assert read_all(path, encoding="utf-16")[0].encoding == "utf-16-le"  # wrong, but obeyed
    for bad in ("nope", "base64"):
        with pytest.raises(InputError, match=rf"a\.csv: unknown text encoding '{bad}'"):
            open_table(path, encoding=bad)


def test_utf8_multibyte_char_cut_by_the_detection_sample(tmp_path):
    head = "Name,Note\n" + "x" * (reader.SAMPLE_SIZE - 16) + ",a\n"
    path = write(tmp_path, "a.csv", head + "Zoë,ñ€\n")  # 'ë' straddles byte 64 KiB
    assert path.read_bytes()[reader.SAMPLE_SIZE - 1 : reader.SAMPLE_SIZE + 1] == "ë".encode()
    table, rows = read_all(path)
    assert table.encoding == "utf-8"
    assert rows[-1].values == {"Name": "Zoë", "Note": "ñ€"}
    assert table.decode_errors == 0


def test_late_undecodable_bytes_fall_back_visibly(tmp_path):
    # ASCII sample -> UTF-8; a Windows line far below must not crash the import.
    filler = "".join(f"user{i},ok\n" for i in range(8000))
    data = b"Name,Note\n" + filler.encode() + "Peña,Café €\n".encode("cp1252") + b"last,ok\n"
    table, rows = read_all(write(tmp_path, "a.csv", data))
    assert table.encoding == "utf-8"
    bad = [r for r in rows if r.encoding_error]
    assert [(r.line, r.values) for r in bad] == [(8002, {"Name": "Peña", "Note": "Café €"})]
    assert table.decode_errors == 3
    assert rows[-1].values == {"Name": "last", "Note": "ok"} and not rows[-1].encoding_error


def test_undecodable_bytes_under_legacy_encoding_become_replacement_char(tmp_path):
    data = "Name,Note\nPeña,x\n".encode("cp1252") + b"bad\x81byte,y\n"
    table, rows = read_all(write(tmp_path, "a.csv", data), encoding="cp1252")
    assert rows[1].values["Name"] == "bad\ufffdbyte" and rows[1].encoding_error
    assert not rows[0].encoding_error


@pytest.mark.parametrize("encoding", ["utf-8", "utf-8-sig", "utf-16", "cp1252"])
def test_tiny_chunks_give_the_same_rows(tmp_path, monkeypatch, encoding):
    """Chunk boundaries inside characters, CRLF pairs and quoted cells change nothing."""
    text = 'Name;Note\r\nPeña;"a\r\nb;c"\r\n\r\nJosé;"€ ""q"""\rZoë;ñ\n'
    path = write(tmp_path, "a.csv", text, encoding)
    expected = [(r.line, r.values) for r in read_all(path, encoding=encoding)[1]]
    monkeypatch.setattr(reader, "SAMPLE_SIZE", 5)
    monkeypatch.setattr(reader, "CHUNK_SIZE", 3)
    assert [(r.line, r.values) for r in read_all(path, encoding=encoding, delimiter=";")[1]] == expected
    assert expected == [
        (2, {"Name": "Peña", "Note": "a\r\nb;c"}),
        (5, {"Name": "José", "Note": '€ "q"'}),
        (6, {"Name": "Zoë", "Note": "ñ"}),
    ]


# ----------------------------------------------------------------- delimiters


@pytest.mark.parametrize("delimiter", [",", ";", "\t", "|"])
def test_delimiter_detected(tmp_path, delimiter):
    other = ";" if delimiter == "," else ","
    rows_ = [["Name", "Amount", "Note"], ["Peña", f"1{other}5", f"a{other}b"], ["José", "2", ""]]
    buf = io.StringIO()
    csv.writer(buf, delimiter=delimiter).writerows(rows_)
    table, rows = read_all(write(tmp_path, "a.csv", buf.getvalue()))
    assert table.delimiter == delimiter
    assert rows[0].values == {"Name": "Peña", "Amount": f"1{other}5", "Note": f"a{other}b"}


def test_semicolon_file_with_decimal_commas(tmp_path):
    text = "Name;Amount;Fee\nA;1,5;2,5\nB;3,25;0,1\nC;7;1,0\n"
    assert read_all(write(tmp_path, "a.csv", text))[0].delimiter == ";"


def test_quoted_delimiters_do_not_vote(tmp_path):
    text = 'Name;Note\n"Acme, Inc.";"a, b, c"\n"Foo, Ltd";x\n'
    table, rows = read_all(write(tmp_path, "a.csv", text))
    assert table.delimiter == ";"
    assert rows[0].values == {"Name": "Acme, Inc.", "Note": "a, b, c"}


def test_explicit_delimiter_and_single_column(tmp_path):
    path = write(tmp_path, "a.csv", "Email\na@x.com\nb@y.com\n")
    assert read_all(path)[0].delimiter == ","
    assert read_all(write(tmp_path, "a.tsv", "Email\na@x.com\n"))[0].delimiter == "\t"
    table, rows = read_all(write(tmp_path, "b.csv", "a;b,c\n1;2,3\n"), delimiter=",")
    assert table.headers == ["a;b", "c"] and rows[0].values == {"a;b": "1;2", "c": "3"}
    with pytest.raises(InputError, match="delimiter must be one character"):
        open_table(path, delimiter=";;")


# ------------------------------------------------------------ rows and lines


def test_quoted_fields_and_line_numbers(tmp_path):
    text = (
        "Name,Note,Amount\r\n"  # 1
        '"Peña, José","line one\r\nline two\r\nline three",10\r\n'  # 2-4
        "\r\n"  # 5 blank
        ',"",\r\n'  # 6 blank (empty cells)
        'Ana,"she said ""hi""",20\r\n'  # 7
        "  ,\t, \r\n"  # 8 blank (whitespace only)
        'Bob,"x\ny",30\r\n'  # 9-10
        "Eve,z,40\r\n"  # 11
        "\r\n,,\r\n\r\n"  # 12-14 trailing blanks
    )
    table, rows = read_all(write(tmp_path, "a.csv", text))
    assert [(r.line, r.values["Name"]) for r in rows] == [
        (2, "Peña, José"),
        (7, "Ana"),
        (9, "Bob"),
        (11, "Eve"),
    ]
    assert rows[0].values["Note"] == "line one\r\nline two\r\nline three"
    assert rows[1].values["Note"] == 'she said "hi"'
    assert rows[2].values["Note"] == "x\ny"
    assert table.blank_rows == 6
    assert all(r.file == str(tmp_path / "a.csv") and r.sheet is None for r in rows)


def test_short_rows_padded_and_long_rows_keep_extra(tmp_path):
    text = "a,b,c,,,\n1,2,3,,,\n4\n5,6,7,8,,9\n10,11,12, ,,\n"
    table, rows = read_all(write(tmp_path, "a.csv", text))
    assert table.headers == ["a", "b", "c"]
    assert table.raw_headers == ["a", "b", "c", "", "", ""]
    assert [(r.values, r.extra) for r in rows] == [
        ({"a": "1", "b": "2", "c": "3"}, ()),
        ({"a": "4", "b": None, "c": None}, ()),
        ({"a": "5", "b": "6", "c": "7"}, ("8", "9")),
        ({"a": "10", "b": "11", "c": "12"}, ()),
    ]


def test_headers_deduplicated_stripped_and_named(tmp_path):
    text = " Email ,Email,,Email (2),Email,Name\t,,\n1,2,3,4,5,6,,\n"
    table, rows = read_all(write(tmp_path, "a.csv", text))
    assert table.headers == ["Email", "Email (3)", "column_3", "Email (2)", "Email (4)", "Name"]
    assert table.raw_headers[0] == " Email "
    assert rows[0].values == dict(zip(table.headers, "123456", strict=True))


def test_header_row_below_a_title(tmp_path):
    text = "Deals export\nGenerated 2024-05-01,,\n\nName,Stage\nAcme,Won\n\nFoo,Lost\n"
    table, rows = read_all(write(tmp_path, "a.csv", text), header_row=3)
    assert table.headers == ["Name", "Stage"] and table.header_line == 4
    assert [(r.line, r.values["Name"]) for r in rows] == [(5, "Acme"), (7, "Foo")]
    assert table.blank_rows == 1
    with pytest.raises(InputError, match="header_row must be 1 or more"):
        open_table(tmp_path / "a.csv", header_row=0)


def test_empty_and_header_only_files(tmp_path):
    table, rows = read_all(write(tmp_path, "a.csv", b""))
    assert (table.headers, rows, table.encoding, table.delimiter) == ([], [], "utf-8", ",")
    table, rows = read_all(write(tmp_path, "b.csv", "a;b\r\n\r\n"))
    assert (table.headers, rows, table.blank_rows) == (["a", "b"], [], 1)


def test_unbalanced_quote_is_an_input_error_with_a_line(tmp_path):
    text = 'Name,Note\nAcme,ok\nFoo,"never closed\n' + "filler,row\n" * 20000
    with pytest.raises(InputError, match=r"a\.csv: line \d+: cannot parse CSV .*unbalanced double quote"):
        read_all(write(tmp_path, "a.csv", text))


# ------------------------------------------------------------------- dispatch


def test_dispatch_errors(tmp_path):
    with pytest.raises(InputError, match=r"missing\.csv: file not found"):
        open_table(tmp_path / "missing.csv")
    with pytest.raises(InputError, match=r"missing\.xlsx: file not found"):
        open_table(tmp_path / "missing.xlsx")
    with pytest.raises(InputError, match=r"old\.xls: .*re-save as \.xlsx or \.csv"):
        open_table(write(tmp_path, "old.xls", b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"))
    with pytest.raises(InputError, match=r"a\.json: unsupported file type '\.json'"):
        open_table(write(tmp_path, "a.json", b"{}"))
    with pytest.raises(InputError, match=r"deals\.xlsx: not a valid XLSX workbook \(zip error\); re-export"):
        open_table(write(tmp_path, "deals.xlsx", b"Name,City\n"))
    with pytest.raises(InputError, match=r"renamed\.csv: is a zip/XLSX workbook"):
        open_table(write(tmp_path, "renamed.csv", b"PK\x03\x04rest"))
    with pytest.raises(InputError, match=r"a\.csv: a \.csv file has no sheets"):
        open_table(write(tmp_path, "a.csv", b"a\n"), sheet="Deals")


def test_uppercase_and_txt_extensions(tmp_path):
    assert read_all(write(tmp_path, "A.TXT", "a\tb\n1\t2\n"))[1][0].values == {"a": "1", "b": "2"}


# ----------------------------------------------------------------------- XLSX


def make_workbook(path: Path) -> Path:
    wb = openpyxl.Workbook()
    ws = wb.active
    ws.title = "Deals"
    ws.append(["Name", "Created", "Amount", "Won", "Total", "Name"])
    ws.append(["Peña, José", datetime(2024, 3, 5, 14, 30), 1500, True, "=C2*2", "x"])
    ws.append([])
    ws.append(["Café Ñandú", datetime(2023, 12, 31), 99.5, False, None, None])
    ws.append([None, None, None, None, None, None])
    ws.append(["Short"])
    ws.append(["Long", None, None, None, None, None, None, "beyond"])
    ws["A12"] = "   "  # trailing whitespace-only row after a gap
    ws["J12"] = None
    other = wb.create_sheet("Contacts")
    other.append(["Deal list 2024"])
    other.append([])
    other.append(["Email", "", "Phone", None])
    other.append(["a@x.com", "?", "+34 600", None])
    wb.save(path)
    return path


def test_xlsx_types_blank_rows_and_lines(tmp_path):
    path = make_workbook(tmp_path / "deals.xlsx")
    table, rows = read_all(path)
    assert (table.sheet, table.encoding, table.delimiter) == ("Deals", None, None)
    assert table.headers == ["Name", "Created", "Amount", "Won", "Total", "Name (2)"]
    assert [r.line for r in rows] == [2, 4, 6, 7]
    first = rows[0]
    assert first.values == {
        "Name": "Peña, José",
        "Created": datetime(2024, 3, 5, 14, 30),
        "Amount": 1500,
        "Won": True,
        "Total": None,  # formula written by openpyxl: no cached value
        "Name (2)": "x",
    }
    assert type(first.values["Amount"]) is int and type(rows[1].values["Amount"]) is float
    assert rows[2].values == {
        "Name": "Short",
        "Created": None,
        "Amount": None,
        "Won": None,
        "Total": None,
        "Name (2)": None,
    }
    assert rows[3].extra == ("beyond",)
    assert table.blank_rows == 7  # rows 3, 5, 8-11 (absent from the file) and 12 (whitespace only)
    assert all(r.sheet == "Deals" and r.file == str(path) for r in rows)


def test_xlsx_sheet_by_name_and_header_row(tmp_path):
    path = make_workbook(tmp_path / "deals.xlsx")
    table, rows = read_all(path, sheet="Contacts", header_row=2)
    assert table.sheet == "Contacts" and table.header_line == 3
    assert table.headers == ["Email", "column_2", "Phone"]
    assert table.raw_headers == ["Email", "", "Phone"]
    assert [(r.line, r.values) for r in rows] == [
        (4, {"Email": "a@x.com", "column_2": "?", "Phone": "+34 600"})
    ]
    with pytest.raises(
        InputError, match=r"deals\.xlsx: no sheet named 'Nope'; available sheets: 'Deals', 'Contacts'"
    ):
        open_table(path, sheet="Nope")


def test_xlsx_stale_dimension_does_not_truncate(tmp_path):
    path = make_workbook(tmp_path / "deals.xlsx")
    stale = tmp_path / "stale.xlsx"
    with zipfile.ZipFile(path) as src, zipfile.ZipFile(stale, "w") as dst:
        for item in src.infolist():
            data = src.read(item.filename)
            if item.filename == "xl/worksheets/sheet1.xml":
                data, n = re.subn(rb'<dimension ref="[^"]*"', b'<dimension ref="A1:B2"', data)
                assert n == 1
            dst.writestr(item, data)
    assert [r.line for r in read_all(stale)[1]] == [2, 4, 6, 7]


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="needs /proc to list open files")
def test_files_closed_on_exit(tmp_path):
    def open_handles(path: Path) -> int:
        fds = Path("/proc/self/fd")
        return sum(1 for fd in fds.iterdir() if os.path.realpath(fd) == str(path.resolve()))

    for path in (make_workbook(tmp_path / "deals.xlsx"), write(tmp_path, "a.csv", "a,b\n1,2\n3,4\n")):
        with open_table(path) as table:
            next(iter(table))
            assert open_handles(path) >= 1
        assert open_handles(path) == 0


# ----------------------------------------------------------------- properties


def reference_records(data: bytes, table: reader.Table) -> list[list[str]]:
    """The stdlib's records for the same bytes, decoded the way the reader decodes them."""
    text = data.decode(table.encoding, reader._ERRORS).replace(reader._MARK, "").lstrip("\ufeff")
    return list(csv.reader(io.StringIO(text, newline=""), delimiter=table.delimiter))


def is_blank(record: list[str]) -> bool:
    return all(not c or c.isspace() for c in record)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.binary(max_size=400), header_row=st.integers(1, 3))
def test_arbitrary_bytes_never_crash_and_every_record_is_accounted_for(tmp_path, data, header_row):
    """Accounting: let R be csv.reader's records for the decoded text with the detected delimiter.

    The first ``header_row - 1`` records are skipped, then blank records (every cell empty or
    whitespace), then one record is the header. Every record after the header is either
    yielded as a SheetRow or counted in ``blank_rows``: yielded + blank_rows == len(rest).
    """
    path = write(tmp_path, "fuzz.csv", data)
    try:
        with open_table(path, header_row=header_row) as table:
            rows = list(table)
    except InputError:
        assert data.startswith((b"PK\x03\x04", b"\xd0\xcf\x11\xe0"))
        return
    records = reference_records(data, table)[header_row - 1 :]
    while records and is_blank(records[0]):
        records.pop(0)
    rest = records[1:]
    assert len(rows) + table.blank_rows == len(rest)
    assert [r.values for r in rows] == [
        dict(zip(table.headers, rec + [None] * (len(table.headers) - len(rec)), strict=False))
        for rec in rest
        if not is_blank(rec)
    ]


WORDS = [
    "Peña",
    "José",
    "Café",
    "€",
    "¿Qué?",
    "¡Olé!",
    "pingüino",
    "Ñandú",
    "año",
    "ACME",
    "x",
    "42",
    "1,5",
    "a;b",
    "tab\there",
    "pi|pe",
    '"',
    '""q""',
    "\n",
    "\r\n",
    "\r",
    " ",
    "",
]


@st.composite
def tables(draw):
    width = draw(st.integers(2, 5))
    header = [f"Col{i} {draw(st.sampled_from(WORDS[:10]))}" for i in range(width)]
    cell = st.lists(st.sampled_from(WORDS), max_size=4).map(" ".join)
    body = draw(st.lists(st.lists(cell, min_size=width, max_size=width), max_size=8))
    return header, body


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    table=tables(),
    delimiter=st.sampled_from([",", ";", "\t", "|"]),
    encoding=st.sampled_from(["utf-8", "utf-8-sig", "utf-16", "cp1252"]),
    newline=st.sampled_from(["\r\n", "\n"]),
)
def test_written_tables_read_back_exactly(tmp_path, table, delimiter, encoding, newline):
    header, body = table
    buf = io.StringIO()
    # csv.writer only quotes a lone "\r" when it is part of the line terminator.
    quoting = csv.QUOTE_MINIMAL if newline == "\r\n" else csv.QUOTE_ALL
    csv.writer(buf, delimiter=delimiter, lineterminator=newline, quoting=quoting).writerows([header, *body])
    path = write(tmp_path, "t.csv", buf.getvalue(), encoding)
    read, rows = read_all(path)
    assert read.delimiter == delimiter
    assert read.headers == header
    expected = [dict(zip(header, row, strict=True)) for row in body if not is_blank(row)]
    assert [r.values for r in rows] == expected
    assert read.blank_rows == len(body) - len(expected)
    assert not any(r.extra or r.encoding_error for r in rows)
