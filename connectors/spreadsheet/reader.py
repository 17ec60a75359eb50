"""Stream raw rows out of messy CSV and XLSX exports from any CRM.

Why this exists: CRM exports arrive in whatever shape the exporting tool (or
the person re-saving it in Excel) produced: cp1252 or UTF-16 instead of UTF-8,
semicolons instead of commas, a title line above the header, duplicate or
blank header cells, blank rows, ragged rows. This module turns all of that into
one uniform stream of :class:`SheetRow` objects with the row number a person
sees in Excel, without loading the file into memory and without interpreting
values (the value parsers do that, and they need the raw text to quarantine a
row with a useful message).

Example::

    from crmsync.connectors.spreadsheet.reader import open_table

    with open_table("exports/deals.csv") as table:
        print(table.encoding, table.delimiter, table.headers)
        for row in table:
            if row.extra or row.encoding_error:
                quarantine(row)
            else:
                load(row.values)          # {"Deal": "Peña SA", "Amount": "1.500,00", ...}

Encoding detection (CSV only; ``encoding=`` skips it):

1. A byte order mark wins: UTF-8-sig, UTF-16 (Excel's "Unicode text"), UTF-32.
2. UTF-16 without a BOM is recognised by its NUL-byte pattern.
3. If the first 64 KiB are valid UTF-8 (a character cut at the end of the
   sample is allowed), the file is UTF-8. Pure ASCII counts as UTF-8.
4. Otherwise, if the sample decodes as cp1252 and looks like Western text
   (accented letters mostly isolated between ASCII letters, as in "Peña",
   "Café"), it is cp1252: charset-normalizer is unreliable on short Western
   samples (it answers cp1250 or even cp1125 for "José,Café,€").
5. Otherwise charset-normalizer picks the legacy encoding (cp1251 Russian,
   Shift-JIS, ...); a Latin-script answer (cp1250, latin-1, mac_roman, ...) is
   mapped to cp1252, the encoding Excel on Western Windows writes.

Limits: Central European cp1250 files ("Łódź") without a BOM come back as
cp1252 mojibake; pass ``encoding="cp1250"``. Detection only sees the first
64 KiB. When a later byte does not decode under the chosen encoding the reader
does not fail: under UTF-8 each undecodable byte is read as cp1252 (a UTF-8
export with a pasted Windows line is the usual cause, and this recovers
"Peña"); under any other encoding it becomes U+FFFD. Either way the row's
``encoding_error`` is True and ``Table.decode_errors`` counts the replacements,
so the caller can quarantine or report the row instead of silently storing a
guess.

Delimiter detection (CSV only; ``delimiter=`` skips it): each of ``,`` ``;``
tab ``|`` is tried with the csv module on up to 50 records of the sample (so
quoted delimiters and newlines do not count); the winner is the delimiter
whose header has at least two fields and whose later records most often have
the same field count, ties going to more fields, then to the order above. If
none splits the header, the file is one column (tab for ``.tsv``, else comma).

Row rules shared by CSV and XLSX: ``header_row`` counts spreadsheet rows (a
multi-line quoted cell is one row); the header is the first non-blank row at or
after it. A row whose cells are all empty or whitespace is blank: skipped and
counted in ``blank_rows``. Missing cells are None; non-empty cells beyond the
last header go to ``extra``. Header names are stripped; blank header cells up
to the last named one become ``column_<n>`` (1-based); trailing blank header
cells are dropped (data under them lands in ``extra``); repeated names become
"Email", "Email (2)", "Email (3)", skipping names already used in the file.
Names are case-sensitive.

XLSX cells keep openpyxl's types (str, int, float, bool, datetime, and for
time or duration formats time/timedelta). Workbooks are opened with
``data_only=True``: a formula cell yields the value Excel cached when it last
saved the file; files written by tools that do not calculate (openpyxl itself,
some generators) have no cached value and yield None.
"""

from __future__ import annotations

import codecs
import csv
import io
import os
import re
import warnings
import zipfile
import zlib
from collections import deque
from collections.abc import Callable, Iterator
from itertools import chain, repeat
from types import TracebackType
from typing import IO, Any, NamedTuple
from xml.etree.ElementTree import ParseError

from crmsync.errors import InputError

__all__ = [
    "CSV_EXTENSIONS",
    "XLSX_EXTENSIONS",
    "SheetRow",
    "Table",
    "detect_delimiter",
    "detect_encoding",
    "open_table",
]

CSV_EXTENSIONS = frozenset({".csv", ".txt", ".tsv"})
XLSX_EXTENSIONS = frozenset({".xlsx", ".xlsm"})

SAMPLE_SIZE = 64 * 1024
CHUNK_SIZE = 1024 * 1024
# A physical line longer than this cannot be a spreadsheet row; without a cap a
# newline-free binary file would be buffered whole.
MAX_LINE_CHARS = 32 * 1024 * 1024
DELIMITERS = (",", ";", "\t", "|")
SNIFF_RECORDS = 50

_BOMS = (
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: it starts with the same two bytes
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF8, "utf-8-sig"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)
_ZIP_MAGIC = b"PK\x03\x04"
_OLE_MAGIC = b"\xd0\xcf\x11\xe0\xa1\xb1\x1a\xe1"
# fmt: off
_LATIN_SCRIPT_CODECS = frozenset(codecs.lookup(name).name for name in (
    "cp1252", "latin-1", "iso8859-15", "cp1250", "iso8859-2", "cp1254", "iso8859-9", "cp1257",
    "iso8859-13", "iso8859-3", "iso8859-4", "iso8859-10", "iso8859-14", "iso8859-16", "mac-roman",
    "mac-latin2", "mac-iceland", "mac-turkish", "cp437", "cp850", "cp852", "cp858", "cp860", "cp863",
    "cp865", "cp775",
))
# fmt: on
_NON_ASCII_RUN = re.compile(r"[^\x00-\x7f]{3,}")
_NON_ASCII = re.compile(r"[^\x00-\x7f]")

# Undecodable bytes are replaced by the lenient error handler below, which
# prefixes each replacement with this Unicode noncharacter so the reader can
# find the lines concerned after the fast C decode; the marker is then removed
# (a file that really contains U+FDD0 loses it and is reported as a decode error).
_MARK = "\ufdd0"
_ERRORS = "crmsync.spreadsheet.lenient"


def _lenient_decode(exc: UnicodeError) -> tuple[str, int]:
    if not isinstance(exc, UnicodeDecodeError):
        raise exc
    if exc.encoding.replace("_", "-").lower() in ("utf-8", "utf8"):
        replacement = exc.object[exc.start : exc.end].decode("cp1252", "replace")
    else:
        replacement = "\ufffd"
    return _MARK + replacement, exc.end


codecs.register_error(_ERRORS, _lenient_decode)


class SheetRow(NamedTuple):
    """One non-blank data row, values untouched so parsers can quarantine with context.

    ``line`` is the row number shown by Excel/LibreOffice (header row = 1 by
    default); for a CSV record holding a multi-line quoted cell it is the
    number of the record's first physical line. ``extra`` holds the non-empty
    cells beyond the last header. ``encoding_error`` is True when some bytes of
    the row did not decode under the table's encoding and were replaced (see the
    module docstring).

    A named tuple because one is made per row: reading a 17-column deals CSV took 9.0 us per row
    with a frozen dataclass, 7.5 with this.
    """

    file: str
    sheet: str | None
    line: int
    values: dict[str, object]
    extra: tuple[object, ...]
    encoding_error: bool = False


class Table:
    """An open CSV file or worksheet: headers are read on open, rows stream on iteration.

    Use it as a context manager so the file or workbook is closed even when
    the caller stops early. Iterating twice continues where the first loop
    stopped; rows are read once.

    Beyond the documented API: ``header_line`` is the line of the header row
    (0 when the file has none) and ``decode_errors`` counts the byte sequences
    replaced so far because they did not decode (the decoder runs up to one
    1 MiB chunk ahead of the rows). ``blank_rows`` grows as rows are read. ``text_cells`` is True
    when every cell is text or ``None`` (CSV; XLSX cells are typed).
    """

    path: str
    sheet: str | None
    headers: list[str]
    raw_headers: list[str]
    encoding: str | None
    delimiter: str | None
    blank_rows: int
    header_line: int
    decode_errors: int
    text_cells: bool

    def __init__(self, path: str, sheet: str | None) -> None:
        self.path = path
        self.sheet = sheet
        self.headers = []
        self.raw_headers = []
        self.encoding = None
        self.delimiter = None
        self.blank_rows = 0
        self.header_line = 0
        self.decode_errors = 0
        self.text_cells = False
        self._rows: Iterator[SheetRow] = iter(())
        self._bare_rows: Callable[[], Iterator[SheetRow | tuple[int, list[str]]]] | None = None
        self._closers: list[Any] = []

    def __iter__(self) -> Iterator[SheetRow]:
        return self._rows

    def cell_rows(self) -> Iterator[SheetRow | tuple[int, list[str]]]:
        """The rows iteration gives, except that a CSV row with exactly one cell per header and
        nothing to note (no undecodable bytes) comes as a plain ``(line, cells)`` tuple: the list
        ``csv`` made, with no dict (see ``EntityMapping.convert_cells``). Use one or the other.
        """
        return self._bare_rows() if self._bare_rows is not None else self._rows

    def __enter__(self) -> Table:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        """Release the file handle or workbook; safe to call more than once."""
        while self._closers:
            self._closers.pop().close()

    def __repr__(self) -> str:
        where = f" sheet={self.sheet!r}" if self.sheet is not None else ""
        return f"<Table {self.path!r}{where} columns={len(self.headers)}>"


def open_table(
    path: str | os.PathLike[str],
    *,
    sheet: str | None = None,
    encoding: str | None = None,
    delimiter: str | None = None,
    header_row: int = 1,
) -> Table:
    """Open a CSV/TXT/TSV or XLSX/XLSM file by extension and read its header.

    Raises InputError (one line: file, problem, fix) when the file cannot be
    read at all: missing, unsupported type, old ``.xls``, broken workbook,
    unknown sheet or encoding, or a CSV whose quoting cannot be parsed.
    """
    name = os.fspath(path)
    if header_row < 1:
        raise InputError(f"{name}: header_row must be 1 or more (got {header_row}); rows count from 1")
    ext = os.path.splitext(name)[1].lower()
    if ext in CSV_EXTENSIONS:
        if sheet is not None:
            raise InputError(f"{name}: a {ext} file has no sheets; drop sheet={sheet!r}")
        return _open_csv(name, encoding, delimiter, header_row, ext)
    if ext in XLSX_EXTENSIONS:
        return _open_xlsx(name, sheet, header_row)
    if ext == ".xls":
        raise InputError(f"{name}: old binary .xls workbooks are not supported; re-save as .xlsx or .csv")
    raise InputError(f"{name}: unsupported file type {ext or '(no extension)'!r}; export as .csv or .xlsx")


def _open_binary(path: str) -> IO[bytes]:
    try:
        return open(path, "rb")  # noqa: SIM115 - closed by Table.close()
    except FileNotFoundError:
        raise InputError(f"{path}: file not found; check the path") from None
    except IsADirectoryError:
        raise InputError(f"{path}: is a directory; give the path of a .csv or .xlsx file") from None
    except OSError as exc:
        raise InputError(f"{path}: cannot open ({exc.strerror}); check the file's permissions") from None


def _make_headers(raw: list[str]) -> list[str]:
    """Stable, unique, non-empty column names, so every cell has a dict key."""
    names = [h.strip().lstrip("\ufeff").strip() for h in raw]
    while names and not names[-1]:
        names.pop()
    names = [name or f"column_{i}" for i, name in enumerate(names, 1)]
    present = set(names)
    used: set[str] = set()
    headers = []
    for name in names:
        unique = name
        n = 2
        while unique in used:
            unique = f"{name} ({n})"
            n += 1
            while unique in present:
                unique = f"{name} ({n})"
                n += 1
        used.add(unique)
        headers.append(unique)
    return headers


def _is_empty(value: object) -> bool:
    return value is None or (isinstance(value, str) and (not value or value.isspace()))


def _is_blank(cells: Any) -> bool:
    return all(map(_is_empty, cells))


def _non_empty(cells: Any) -> tuple[object, ...]:
    return tuple(c for c in cells if not _is_empty(c))


# --------------------------------------------------------------------------- CSV


def detect_encoding(sample: bytes, at_eof: bool = True) -> str:
    """Pick the Python codec name for a CSV from its first bytes (strategy in the module docstring)."""
    for bom, name in _BOMS:
        if sample.startswith(bom):
            return name
    utf16 = _utf16_without_bom(sample)
    if utf16:
        return utf16
    try:
        codecs.utf_8_decode(sample, "strict", at_eof)
        return "utf-8"
    except UnicodeDecodeError:
        pass
    try:
        western: str | None = sample.decode("cp1252")
    except UnicodeDecodeError:
        western = None
    if western is not None and _looks_western(western):
        return "cp1252"
    import charset_normalizer  # imported lazily: only legacy, non-Western files need it

    best = charset_normalizer.from_bytes(sample).best()
    if best is None:
        return "cp1252"
    name = codecs.lookup(best.encoding).name
    if western is not None and name in _LATIN_SCRIPT_CODECS:
        return "cp1252"
    return name


def _utf16_without_bom(sample: bytes) -> str | None:
    pairs = len(sample) // 2
    if pairs < 4:
        return None
    even = sample[0 : pairs * 2 : 2].count(0)
    odd = sample[1 : pairs * 2 : 2].count(0)
    if odd >= 0.4 * pairs and even <= 0.02 * pairs:
        return "utf-16-le"
    if even >= 0.4 * pairs and odd <= 0.02 * pairs:
        return "utf-16-be"
    return None


def _looks_western(text: str) -> bool:
    """True when accented letters sit alone between ASCII ones ("Peña"), not in runs ("Èâàí")."""
    non_ascii = len(_NON_ASCII.findall(text))
    if not non_ascii:
        return True
    in_runs = sum(len(run) for run in _NON_ASCII_RUN.findall(text))
    return in_runs <= 0.2 * non_ascii


def detect_delimiter(text: str, *, skip_records: int = 0, default: str = ",") -> str:
    """Pick the delimiter from decoded leading text (rule in the module docstring)."""
    best, best_score = default, (0.0, 0)
    for candidate in DELIMITERS:
        counts = []
        reader = csv.reader(io.StringIO(text, newline=""), delimiter=candidate)
        try:
            for i, record in enumerate(reader):
                if i >= skip_records and not _is_blank(record):
                    counts.append(len(record))
                    if len(counts) >= SNIFF_RECORDS:
                        break
        except csv.Error:
            continue
        if not counts or counts[0] < 2:
            continue
        header = counts[0]
        rest = counts[1:] or counts
        score = (sum(1 for n in rest if n == header) / len(rest), header)
        if score > best_score:
            best, best_score = candidate, score
    return best


class _CsvSource:
    """Decodes the byte stream chunk by chunk into physical lines for csv.reader.

    Lines are split exactly like ``open(..., newline="")`` does (``\\r\\n``,
    ``\\r``, ``\\n``), so quoted newlines survive and csv.reader's line_num is a
    physical line count. Lines with replaced bytes are queued in ``bad_lines``.
    """

    def __init__(self, table: Table, raw: IO[bytes], first: bytes, encoding: str) -> None:
        self.table = table
        self.raw = raw
        self.first = first
        self.decoder = codecs.getincrementaldecoder(encoding)(_ERRORS)
        self.bad_lines: deque[int] = deque()

    def chunks(self) -> Iterator[list[str]]:
        chunk = self.first
        self.first = b""
        emitted = 0
        carry = ""
        start = True
        while True:
            final = not chunk
            text = self.decoder.decode(chunk, final)
            if start and text:
                text = text.lstrip("\ufeff")
                start = False
            if carry:
                text = carry + text
            if _MARK in text:
                text = self._note_errors(text, emitted)
            lines = io.StringIO(text, newline="").readlines()
            carry = ""
            if not final and lines and lines[-1][-1] != "\n":
                carry = lines.pop()
                if len(carry) > MAX_LINE_CHARS:
                    raise InputError(
                        f"{self.table.path}: line {emitted + len(lines) + 1}: longer than "
                        f"{MAX_LINE_CHARS} characters without a line break; not a CSV export, "
                        "check the file type"
                    )
            emitted += len(lines)
            yield lines
            if final:
                return
            chunk = self.raw.read(CHUNK_SIZE)

    def _note_errors(self, text: str, emitted: int) -> str:
        line = emitted + 1
        pos = 0
        while (found := text.find(_MARK, pos)) >= 0:
            between = text[pos:found]
            line += between.count("\n") + between.count("\r") - between.count("\r\n")
            self.table.decode_errors += 1
            if not self.bad_lines or self.bad_lines[-1] != line:
                self.bad_lines.append(line)
            pos = found + 1
        return text.replace(_MARK, "")


def _open_csv(path: str, encoding: str | None, delimiter: str | None, header_row: int, ext: str) -> Table:
    table = Table(path, None)
    raw = _open_binary(path)
    table._closers.append(raw)
    try:
        return _start_csv(table, raw, encoding, delimiter, header_row, ext)
    except BaseException:
        table.close()
        raise


def _start_csv(
    table: Table, raw: IO[bytes], encoding: str | None, delimiter: str | None, header_row: int, ext: str
) -> Table:
    path = table.path
    try:
        sample = raw.read(SAMPLE_SIZE)
    except OSError as exc:
        raise InputError(f"{path}: cannot read ({exc.strerror}); check the file") from None
    at_eof = len(sample) < SAMPLE_SIZE
    if sample.startswith(_ZIP_MAGIC):
        raise InputError(f"{path}: is a zip/XLSX workbook, not text; rename it to .xlsx or export as .csv")
    if sample.startswith(_OLE_MAGIC):
        raise InputError(f"{path}: is an old binary .xls workbook, not text; re-save as .xlsx or .csv")

    if encoding is None:
        encoding = detect_encoding(sample, at_eof)
    else:
        try:
            info = codecs.lookup(encoding)
        except LookupError:
            info = None
        if info is None or not getattr(info, "_is_text_encoding", True):
            raise InputError(
                f"{path}: unknown text encoding {encoding!r}; "
                "use a Python codec name such as 'utf-8' or 'cp1252'"
            )
        encoding = info.name
    if encoding in ("utf-16", "utf-32") and not sample.startswith(tuple(bom for bom, _ in _BOMS)):
        # Python's BOM-sniffing codecs fail without a BOM; Windows writes little-endian.
        encoding += "-le"
    table.encoding = encoding
    table.text_cells = True

    if delimiter is None:
        text = codecs.getincrementaldecoder(encoding)("replace").decode(sample, at_eof)
        if not at_eof:
            # The last line of the sample may be cut; records must not be.
            cut = max(text.rfind("\n"), text.rfind("\r"))
            text = text[: cut + 1] if cut >= 0 else text
        delimiter = detect_delimiter(
            text.lstrip("\ufeff"), skip_records=header_row - 1, default="\t" if ext == ".tsv" else ","
        )
    elif len(delimiter) != 1 or delimiter in '\r\n"':
        raise InputError(
            f"{path}: delimiter must be one character other than a quote or newline, got {delimiter!r}"
        )
    table.delimiter = delimiter

    source = _CsvSource(table, raw, sample, encoding)
    reader = csv.reader(chain.from_iterable(source.chunks()), delimiter=delimiter)
    records = previous = 0
    try:
        for cells in reader:
            records += 1
            first, previous = previous + 1, reader.line_num
            if records >= header_row and not _is_blank(cells):
                table.raw_headers = cells
                table.header_line = first
                break
    except csv.Error as exc:
        raise _csv_input_error(path, reader.line_num, exc) from None
    table.headers = _make_headers(table.raw_headers)
    table._rows = _csv_rows(table, reader, source)
    table._bare_rows = lambda: _csv_rows(table, reader, source, bare=True)
    return table


def _csv_input_error(path: str, line: int, exc: csv.Error) -> InputError:
    return InputError(
        f"{path}: line {line}: cannot parse CSV ({exc}); probably an unbalanced double quote "
        "opening a cell above this line: fix or remove the quote, or re-export the file"
    )


def _csv_rows(table: Table, reader: Any, source: _CsvSource, bare: bool = False,
              ) -> Iterator[SheetRow | tuple[int, list[str]]]:
    path = table.path
    headers = table.headers
    width = len(headers)
    bad_lines = source.bad_lines
    previous = reader.line_num
    new_row = SheetRow._make
    try:
        for cells in reader:
            first = previous + 1
            previous = reader.line_num
            for c in cells:
                if c and not c.isspace():
                    break
            else:
                table.blank_rows += 1
                continue
            if len(cells) == width:
                if bare and not bad_lines:
                    yield (first, cells)
                    continue
                values, extra = dict(zip(headers, cells, strict=True)), ()
            else:
                values, extra = _align(headers, width, cells)
            if bad_lines:
                while bad_lines and bad_lines[0] < first:
                    bad_lines.popleft()
                yield new_row((path, None, first, values, extra, bool(bad_lines) and bad_lines[0] <= previous))
            else:
                yield new_row((path, None, first, values, extra, False))
    except csv.Error as exc:
        raise _csv_input_error(path, reader.line_num, exc) from None
    finally:
        table.close()


# -------------------------------------------------------------------------- XLSX

_XLSX_READ_ERRORS = (zipfile.BadZipFile, zlib.error, KeyError, ValueError, TypeError, ParseError, EOFError)


def _open_xlsx(path: str, sheet: str | None, header_row: int) -> Table:
    import openpyxl  # imported lazily: CSV-only runs do not pay for it

    _open_binary(path).close()  # same missing-file/permission messages as CSV
    try:
        with warnings.catch_warnings():
            # openpyxl warns about styles and extensions it ignores; library code stays quiet.
            warnings.simplefilter("ignore")
            workbook = openpyxl.load_workbook(path, read_only=True, data_only=True)
    except (*_XLSX_READ_ERRORS, OSError, openpyxl.utils.exceptions.InvalidFileException) as exc:
        kind = "zip error" if isinstance(exc, zipfile.BadZipFile | zlib.error) else type(exc).__name__
        raise InputError(f"{path}: not a valid XLSX workbook ({kind}); re-export as .xlsx or .csv") from None
    table = Table(path, None)
    table._closers.append(workbook)
    try:
        if sheet is None:
            if not workbook.worksheets:
                raise InputError(f"{path}: workbook has no worksheets; re-export the data as .xlsx or .csv")
            worksheet = workbook.worksheets[0]
        elif sheet in workbook.sheetnames:
            worksheet = workbook[sheet]
        else:
            names = ", ".join(repr(n) for n in workbook.sheetnames)
            raise InputError(f"{path}: no sheet named {sheet!r}; available sheets: {names}")
        if not hasattr(worksheet, "iter_rows"):
            raise InputError(f"{path}: sheet {sheet!r} is a chart, not a table of cells; pick another sheet")
        table.sheet = worksheet.title
        # The stored dimension is often stale (or absent): trust the rows themselves.
        worksheet.reset_dimensions()
        cells_by_row = worksheet.iter_rows(min_row=header_row, values_only=True)
        # Closing the row generator first releases the sheet's open zip member;
        # closing the workbook alone leaves the file descriptor open.
        table._closers.append(cells_by_row)
        rows = enumerate(cells_by_row, header_row)
        try:
            for line, cells in rows:
                if not _is_blank(cells):
                    table.header_line = line
                    table.raw_headers = ["" if c is None else str(c) for c in cells]
                    break
        except _XLSX_READ_ERRORS as exc:
            raise _xlsx_input_error(table, exc) from None
        table.headers = _make_headers(table.raw_headers)
        table._rows = _xlsx_rows(table, rows)
        return table
    except BaseException:
        table.close()
        raise


def _xlsx_input_error(table: Table, exc: Exception) -> InputError:
    return InputError(
        f"{table.path}: sheet {table.sheet!r} is damaged ({type(exc).__name__}); "
        "open and re-save it in Excel/LibreOffice, or export as .csv"
    )


def _align(headers: list[str], width: int, cells: Any) -> tuple[dict[str, object], tuple[object, ...]]:
    """Cells -> {header: value}; a short row is padded with None, cells past the header go to ``extra``."""
    values: dict[str, object] = dict(zip(headers, cells, strict=False))
    n = len(cells)
    if n < width:
        values.update(zip(headers[n:], repeat(None)))
    elif n > width:
        return values, _non_empty(cells[width:])
    return values, ()


def _xlsx_rows(table: Table, rows: Iterator[tuple[int, Any]]) -> Iterator[SheetRow]:
    path, sheet, headers = table.path, table.sheet, table.headers
    width = len(headers)
    try:
        for line, cells in rows:
            if _is_blank(cells):
                table.blank_rows += 1
                continue
            values, extra = _align(headers, width, cells)
            yield SheetRow(path, sheet, line, values, extra)
    except _XLSX_READ_ERRORS as exc:
        raise _xlsx_input_error(table, exc) from None
    finally:
        table.close()
