//! The three input formats — `.fvecs`, `.npy` (little-endian float32, 2-d, C order) and JSON
//! Lines — read one row at a time in file order. Row numbers count vectors from the start of
//! the file (for JSON Lines: non-blank lines), so that `--skip N` and the ids generated for
//! `.fvecs`/`.npy` rows mean the same thing on every run.
//!
//! Two kinds of error: a file that cannot be used at all (unreadable, bad header, a size that
//! does not fit the header) is found before anything is sent; a bad record is found when the
//! reader gets to it, after the rows before it were sent, and names its row (and line).

use std::fs::File;
use std::io::{BufRead, BufReader, Read, Seek, SeekFrom};
use std::path::Path;

use serde::Deserialize;
use serde_json::value::RawValue;

/// The input formats.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum Format {
    Fvecs,
    Npy,
    Jsonl,
}

impl Format {
    /// The format a file name's extension stands for.
    pub fn from_path(path: &Path) -> Option<Format> {
        let ext = path.extension()?.to_str()?.to_ascii_lowercase();
        match ext.as_str() {
            "fvecs" => Some(Format::Fvecs),
            "npy" => Some(Format::Npy),
            "jsonl" | "ndjson" => Some(Format::Jsonl),
            _ => None,
        }
    }
}

/// Why reading stopped.
#[derive(Debug)]
pub enum ReadError {
    /// The file cannot be used at all; nothing of it was sent.
    File(String),
    /// A record is bad (the message names its row or line); the rows before it are fine.
    Record(String),
}

/// One row of the input.
pub struct Record {
    /// Its row number (0-based, from the start of the file).
    pub row: u64,
    /// Its line (1-based), for JSON Lines.
    pub line: Option<u64>,
    pub item: Item,
}

pub enum Item {
    /// A row of `.fvecs`/`.npy`: its id is made from the row number.
    Dense(Vec<f32>),
    /// A JSON Lines item, its vector and metadata passed on as written (checked, not
    /// re-printed, so that the server parses exactly the user's digits).
    Json {
        id: String,
        vector: Box<RawValue>,
        metadata: Option<Box<RawValue>>,
    },
}

/// A source of rows.
pub trait Reader: Send {
    /// The vectors' dimension; `None` when no row is left to take it from. May read ahead
    /// (JSON Lines takes it from the next row).
    fn dim(&mut self) -> Result<Option<usize>, ReadError>;
    /// How many rows the file holds in all, when known.
    fn total_rows(&self) -> Option<u64>;
    /// Skips the first `n` rows (only before the first `next_record`); returns how many
    /// there were.
    fn skip(&mut self, n: u64) -> Result<u64, ReadError>;
    /// The next row, or `None` at the end.
    fn next_record(&mut self) -> Result<Option<Record>, ReadError>;
}

/// Opens `path` as `format`. `count_rows` lets JSON Lines count its rows first (a quick scan
/// of the file) so that progress can show an ETA.
pub fn open(path: &Path, format: Format, count_rows: bool) -> Result<Box<dyn Reader>, ReadError> {
    let name = path.display().to_string();
    let file = File::open(path).map_err(|e| ReadError::File(format!("cannot open {name}: {e}")))?;
    let meta = file
        .metadata()
        .map_err(|e| ReadError::File(format!("cannot read {name}: {e}")))?;
    if meta.is_dir() {
        return Err(ReadError::File(format!("{name} is a directory")));
    }
    match format {
        Format::Fvecs => Ok(Box::new(Dense::fvecs(name, file, meta.len())?)),
        Format::Npy => Ok(Box::new(Dense::npy(name, file, meta.len())?)),
        Format::Jsonl => {
            let total = if count_rows && meta.is_file() {
                Some(count_jsonl_rows(&name, path)?)
            } else {
                None
            };
            Ok(Box::new(Jsonl {
                name,
                file: BufReader::with_capacity(1 << 20, file),
                line: 0,
                row: 0,
                total,
                dim: None,
                peeked: None,
                buf: Vec::new(),
            }))
        }
    }
}

// ---------------------------------------------------------------------------------------
// .fvecs and .npy: fixed-size records of little-endian f32, so skipping is a seek.

struct Dense {
    name: String,
    file: BufReader<File>,
    dim: usize,
    rows: u64,
    /// Where row 0 starts.
    data_start: u64,
    /// Bytes per row, including the 4-byte dimension of an `.fvecs` record.
    record_bytes: u64,
    fvecs: bool,
    row: u64,
    buf: Vec<u8>,
}

/// Largest dimension believed from a file (vectord accepts at most 4096; a larger number
/// in an `.fvecs` header means the file is something else).
const MAX_FILE_DIM: u64 = 1 << 20;

impl Dense {
    fn fvecs(name: String, mut file: File, len: u64) -> Result<Dense, ReadError> {
        let mut dim = 0u64;
        let mut rows = 0u64;
        let mut record_bytes = 4u64;
        if len > 0 {
            let mut head = [0u8; 4];
            file.read_exact(&mut head).map_err(|e| {
                ReadError::File(format!("{name}: cannot read the first record: {e}"))
            })?;
            let d = i32::from_le_bytes(head);
            if d <= 0 || d as u64 > MAX_FILE_DIM {
                return Err(ReadError::File(format!(
                    "{name}: the first record's dimension is {d}: not an .fvecs file \
                     (records are a little-endian int32 dimension, then that many float32)"
                )));
            }
            dim = d as u64;
            record_bytes = 4 + 4 * dim;
            if !len.is_multiple_of(record_bytes) {
                return Err(ReadError::File(format!(
                    "{name}: its size ({len} bytes) is not a whole number of records of \
                     {record_bytes} bytes (dimension {dim}, from the first record): the file \
                     is truncated, or its records do not all have the same dimension"
                )));
            }
            rows = len / record_bytes;
            file.seek(SeekFrom::Start(0))
                .map_err(|e| ReadError::File(format!("{name}: {e}")))?;
        }
        Ok(Dense {
            name,
            file: BufReader::with_capacity(1 << 20, file),
            dim: dim as usize,
            rows,
            data_start: 0,
            record_bytes,
            fvecs: true,
            row: 0,
            buf: Vec::new(),
        })
    }

    fn npy(name: String, mut file: File, len: u64) -> Result<Dense, ReadError> {
        let header = read_npy_header(&name, &mut file, len)?;
        let data_bytes = header.rows * header.dim * 4;
        let have = len - header.data_start;
        if have < data_bytes {
            return Err(ReadError::File(format!(
                "{name}: truncated: shape ({}, {}) needs {data_bytes} bytes of data, the file \
                 has {have}",
                header.rows, header.dim
            )));
        }
        if have > data_bytes {
            return Err(ReadError::File(format!(
                "{name}: {} bytes follow the ({}, {}) array: not a single .npy array",
                have - data_bytes,
                header.rows,
                header.dim
            )));
        }
        Ok(Dense {
            name,
            file: BufReader::with_capacity(1 << 20, file),
            dim: header.dim as usize,
            rows: header.rows,
            data_start: header.data_start,
            record_bytes: header.dim * 4,
            fvecs: false,
            row: 0,
            buf: Vec::new(),
        })
    }
}

impl Reader for Dense {
    fn dim(&mut self) -> Result<Option<usize>, ReadError> {
        Ok((self.rows > 0).then_some(self.dim))
    }

    fn total_rows(&self) -> Option<u64> {
        Some(self.rows)
    }

    fn skip(&mut self, n: u64) -> Result<u64, ReadError> {
        let n = n.min(self.rows);
        self.row = n;
        self.file
            .seek(SeekFrom::Start(self.data_start + n * self.record_bytes))
            .map_err(|e| ReadError::File(format!("{}: {e}", self.name)))?;
        Ok(n)
    }

    fn next_record(&mut self) -> Result<Option<Record>, ReadError> {
        if self.row >= self.rows {
            return Ok(None);
        }
        let row = self.row;
        let bad = ReadError::Record;
        self.buf.resize(self.record_bytes as usize, 0);
        self.file
            .read_exact(&mut self.buf)
            .map_err(|e| bad(format!("{}: row {row}: {e}", self.name)))?;
        let mut data = &self.buf[..];
        if self.fvecs {
            let d = i32::from_le_bytes([data[0], data[1], data[2], data[3]]);
            if d as i64 != self.dim as i64 {
                return Err(bad(format!(
                    "{}: row {row} has dimension {d}, the first row has {}: all records of an \
                     .fvecs file must have the same dimension",
                    self.name, self.dim
                )));
            }
            data = &data[4..];
        }
        let vector: Vec<f32> = data
            .chunks_exact(4)
            .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
            .collect();
        if let Some(j) = vector.iter().position(|x| !x.is_finite()) {
            return Err(bad(format!(
                "{}: row {row}: component {j} is {}: vectors must be finite",
                self.name, vector[j]
            )));
        }
        self.row += 1;
        Ok(Some(Record {
            row,
            line: None,
            item: Item::Dense(vector),
        }))
    }
}

/// What an `.npy` header says.
struct NpyHeader {
    rows: u64,
    dim: u64,
    data_start: u64,
}

/// Reads and checks an `.npy` header: magic, version 1.0/2.0/3.0, a dict with `descr` `'<f4'`,
/// `fortran_order` False and a 2-d `shape`. Anything else is refused, naming what is wrong.
fn read_npy_header(name: &str, file: &mut File, len: u64) -> Result<NpyHeader, ReadError> {
    let fail = |what: String| ReadError::File(format!("{name}: not a usable .npy file: {what}"));
    let (text, data_start) = read_npy_header_text(file, len).map_err(fail)?;
    let dict = parse_npy_dict(&text).map_err(fail)?;
    let (rows, dim) = npy_shape(&dict).map_err(fail)?;
    Ok(NpyHeader {
        rows,
        dim,
        data_start,
    })
}

/// The text of an `.npy` header (the file read from its start, `len` bytes long) and where
/// the data starts after it; the error says what is wrong with the header's framing.
fn read_npy_header_text(file: &mut File, len: u64) -> Result<(String, u64), String> {
    let mut pre = [0u8; 10];
    if len < 10 || file.read_exact(&mut pre).is_err() {
        return Err(format!("only {len} bytes, too short for an .npy header"));
    }
    if &pre[..6] != b"\x93NUMPY" {
        return Err("it does not start with the .npy magic \\x93NUMPY".into());
    }
    let (major, minor) = (pre[6], pre[7]);
    let (header_len, prefix) = match major {
        1 => (u16::from_le_bytes([pre[8], pre[9]]) as u64, 10u64),
        2 | 3 => {
            let mut more = [0u8; 2];
            file.read_exact(&mut more)
                .map_err(|_| "truncated header".to_string())?;
            (
                u32::from_le_bytes([pre[8], pre[9], more[0], more[1]]) as u64,
                12u64,
            )
        }
        _ => {
            return Err(format!(
                "format version {major}.{minor}: only versions 1, 2 and 3 are read"
            ))
        }
    };
    if prefix + header_len > len || header_len > 1 << 20 {
        return Err(format!(
            "its header claims {header_len} bytes, the file has {len}"
        ));
    }
    let mut raw = vec![0u8; header_len as usize];
    file.read_exact(&mut raw)
        .map_err(|e| format!("cannot read the header: {e}"))?;
    // Versions 1 and 2 are latin-1, 3 is UTF-8; the dict numpy writes is ASCII either way.
    let text: String = if major == 3 {
        String::from_utf8(raw).map_err(|_| "the header is not UTF-8".to_string())?
    } else {
        raw.iter().map(|&b| b as char).collect()
    };
    Ok((text, prefix + header_len))
}

/// The dict an `.npy` header's text holds.
fn parse_npy_dict(text: &str) -> Result<Vec<(String, Py)>, String> {
    match PyParser::new(text).value() {
        Ok(Py::Dict(d)) => Ok(d),
        Ok(_) => Err(format!("the header is not a dict: {}", text.trim())),
        Err(e) => Err(format!("cannot parse the header {:?}: {e}", text.trim())),
    }
}

/// The `(rows, dim)` of an `.npy` header's dict, once its dtype (`descr`), order and shape
/// are checked.
fn npy_shape(dict: &[(String, Py)]) -> Result<(u64, u64), String> {
    let get = |key: &str| dict.iter().find(|(k, _)| k == key).map(|(_, v)| v);
    match get("descr") {
        Some(Py::Str(d)) if d == "<f4" => {}
        Some(Py::Str(d)) => {
            let hint = match d.as_str() {
                ">f4" => " (big-endian float32: save arr.astype('<f4'))",
                "<f8" | ">f8" | "|f8" => " (float64: save arr.astype(np.float32))",
                "<f2" | ">f2" => " (float16: save arr.astype(np.float32))",
                _ => " (save arr.astype(np.float32))",
            };
            return Err(format!(
                "dtype '{d}' is not little-endian float32 ('<f4'){hint}"
            ));
        }
        Some(_) => {
            return Err("a structured dtype: only a plain float32 ('<f4') array is read".into())
        }
        None => return Err("the header has no 'descr'".into()),
    }
    match get("fortran_order") {
        Some(Py::Bool(false)) => {}
        Some(Py::Bool(true)) => {
            return Err(
                "fortran_order is True (column-major): save np.ascontiguousarray(arr)".into(),
            )
        }
        _ => return Err("the header has no boolean 'fortran_order'".into()),
    }
    let shape: Vec<u64> = match get("shape") {
        Some(Py::Tuple(items)) => items
            .iter()
            .map(|v| match v {
                Py::Int(n) if *n >= 0 && *n <= u64::MAX as i128 => Ok(*n as u64),
                _ => Err("'shape' holds something other than sizes".to_string()),
            })
            .collect::<Result<_, _>>()?,
        _ => return Err("the header has no 'shape' tuple".into()),
    };
    if shape.len() != 2 {
        return Err(format!(
            "the array is {}-d with shape {shape:?}: a 2-d array (rows, dim) is needed",
            shape.len()
        ));
    }
    let (rows, dim) = (shape[0], shape[1]);
    if dim == 0 || dim > MAX_FILE_DIM {
        return Err(format!(
            "shape ({rows}, {dim}): the dimension must be 1-{MAX_FILE_DIM}"
        ));
    }
    if rows.checked_mul(dim * 4).is_none() {
        return Err(format!("shape ({rows}, {dim}) is too large"));
    }
    Ok((rows, dim))
}

/// The Python literals an `.npy` header is made of.
#[derive(Debug)]
enum Py {
    Dict(Vec<(String, Py)>),
    Tuple(Vec<Py>),
    /// A list (its items are not needed: a list `descr` is a structured dtype).
    List,
    Str(String),
    Int(i128),
    Bool(bool),
    None,
}

/// A small parser of Python literals: dicts, tuples, lists, quoted strings, integers,
/// True/False/None — all an `.npy` header may hold.
struct PyParser<'a> {
    s: &'a [u8],
    at: usize,
}

impl<'a> PyParser<'a> {
    fn new(text: &'a str) -> Self {
        PyParser {
            s: text.as_bytes(),
            at: 0,
        }
    }

    fn ws(&mut self) {
        while self.at < self.s.len() && self.s[self.at].is_ascii_whitespace() {
            self.at += 1;
        }
    }

    fn peek(&mut self) -> Option<u8> {
        self.ws();
        self.s.get(self.at).copied()
    }

    fn expect(&mut self, c: u8) -> Result<(), String> {
        if self.peek() == Some(c) {
            self.at += 1;
            Ok(())
        } else {
            Err(format!("expected '{}' at byte {}", c as char, self.at))
        }
    }

    /// Items up to `close`, separated by commas, a trailing comma allowed.
    fn seq(&mut self, close: u8) -> Result<Vec<Py>, String> {
        let mut out = Vec::new();
        loop {
            if self.peek() == Some(close) {
                self.at += 1;
                return Ok(out);
            }
            out.push(self.value()?);
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(c) if c == close => {}
                _ => {
                    return Err(format!(
                        "expected ',' or '{}' at byte {}",
                        close as char, self.at
                    ))
                }
            }
        }
    }

    /// A dict, from its opening brace.
    fn dict(&mut self) -> Result<Py, String> {
        self.at += 1;
        let mut out = Vec::new();
        loop {
            if self.peek() == Some(b'}') {
                self.at += 1;
                return Ok(Py::Dict(out));
            }
            let key = match self.value()? {
                Py::Str(k) => k,
                other => return Err(format!("a dict key is not a string: {other:?}")),
            };
            self.expect(b':')?;
            let v = self.value()?;
            out.push((key, v));
            match self.peek() {
                Some(b',') => self.at += 1,
                Some(b'}') => {}
                _ => return Err(format!("expected ',' or '}}' at byte {}", self.at)),
            }
        }
    }

    /// A string quoted by `q`, from its opening quote (no escapes: numpy writes none).
    fn string(&mut self, q: u8) -> Result<Py, String> {
        self.at += 1;
        let start = self.at;
        while self.at < self.s.len() && self.s[self.at] != q {
            if self.s[self.at] == b'\\' {
                return Err("escapes in strings are not supported".into());
            }
            self.at += 1;
        }
        if self.at >= self.s.len() {
            return Err("unterminated string".into());
        }
        let text = String::from_utf8_lossy(&self.s[start..self.at]).into_owned();
        self.at += 1;
        Ok(Py::Str(text))
    }

    fn value(&mut self) -> Result<Py, String> {
        match self.peek() {
            Some(b'{') => self.dict(),
            Some(b'(') => {
                self.at += 1;
                Ok(Py::Tuple(self.seq(b')')?))
            }
            Some(b'[') => {
                self.at += 1;
                self.seq(b']')?;
                Ok(Py::List)
            }
            Some(q @ (b'\'' | b'"')) => self.string(q),
            Some(c) if c.is_ascii_digit() || c == b'-' => {
                let start = self.at;
                self.at += 1;
                while self.at < self.s.len() && self.s[self.at].is_ascii_digit() {
                    self.at += 1;
                }
                let text = std::str::from_utf8(&self.s[start..self.at]).unwrap_or("");
                let n = text
                    .parse::<i128>()
                    .map_err(|_| format!("bad integer {text:?}"))?;
                // Python 2 wrote long integers with an L suffix.
                if self.s.get(self.at) == Some(&b'L') {
                    self.at += 1;
                }
                Ok(Py::Int(n))
            }
            Some(c) if c.is_ascii_alphabetic() => {
                let start = self.at;
                while self.at < self.s.len() && self.s[self.at].is_ascii_alphanumeric() {
                    self.at += 1;
                }
                match &self.s[start..self.at] {
                    b"True" => Ok(Py::Bool(true)),
                    b"False" => Ok(Py::Bool(false)),
                    b"None" => Ok(Py::None),
                    w => Err(format!("unexpected word {:?}", String::from_utf8_lossy(w))),
                }
            }
            Some(c) => Err(format!("unexpected '{}' at byte {}", c as char, self.at)),
            None => Err("the header ends early".into()),
        }
    }
}

// ---------------------------------------------------------------------------------------
// JSON Lines: one {"id","vector","metadata"} object per line; blank lines are ignored.

struct Jsonl {
    name: String,
    file: BufReader<File>,
    /// Lines read so far (the number of the last one read).
    line: u64,
    /// Rows (non-blank lines) read so far, including a peeked one.
    row: u64,
    total: Option<u64>,
    dim: Option<usize>,
    /// The row `dim()` read ahead.
    peeked: Option<Record>,
    buf: Vec<u8>,
}

/// One line as written; unknown fields are refused, as vectord refuses them.
#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LineItem<'a> {
    id: String,
    #[serde(borrow)]
    vector: &'a RawValue,
    #[serde(default, borrow)]
    metadata: Option<&'a RawValue>,
}

/// A serde_json error without its " at line 1 column N" (a line is one JSON text; the
/// column is given separately).
fn json_error(e: &serde_json::Error) -> String {
    let text = e.to_string();
    let msg = match text.rfind(" at line ") {
        Some(at) => &text[..at],
        None => &text,
    };
    format!("{msg} (column {})", e.column())
}

impl Jsonl {
    /// The next non-blank line into `self.buf` (without its line end), or false at the end.
    fn next_line(&mut self) -> Result<bool, ReadError> {
        loop {
            self.buf.clear();
            let n = self.file.read_until(b'\n', &mut self.buf).map_err(|e| {
                ReadError::File(format!("{}: line {}: {e}", self.name, self.line + 1))
            })?;
            if n == 0 {
                return Ok(false);
            }
            self.line += 1;
            if self.buf.iter().any(|b| !b.is_ascii_whitespace()) {
                return Ok(true);
            }
        }
    }

    /// Parses the line in `self.buf` as row `self.row`.
    fn parse(&mut self) -> Result<Record, ReadError> {
        let (row, line) = (self.row, self.line);
        let bad = |what: String| ReadError::Record(format!("{}: line {line}: {what}", self.name));
        let text = std::str::from_utf8(&self.buf).map_err(|_| bad("not UTF-8".into()))?;
        let text = text.trim();
        if !text.starts_with("{") {
            return Err(bad(
                "expected a JSON object {\"id\": ..., \"vector\": [...], \"metadata\": {...}}"
                    .into(),
            ));
        }
        let item: LineItem =
            serde_json::from_str(text).map_err(|e| bad(format!("bad JSON: {}", json_error(&e))))?;
        let numbers: Vec<f64> = serde_json::from_str(item.vector.get()).map_err(|e| {
            bad(format!(
                "\"vector\" must be an array of numbers: {}",
                json_error(&e)
            ))
        })?;
        if numbers.is_empty() {
            return Err(bad("\"vector\" is empty".into()));
        }
        if let Some(j) = numbers.iter().position(|x| x.abs() > f32::MAX as f64) {
            return Err(bad(format!(
                "vector[{j}] = {} is beyond the float32 range",
                numbers[j]
            )));
        }
        match self.dim {
            Some(d) if d != numbers.len() => {
                return Err(bad(format!(
                    "the vector has {} numbers, the first row's has {d}: all vectors must \
                     have the same dimension",
                    numbers.len()
                )))
            }
            Some(_) => {}
            None => self.dim = Some(numbers.len()),
        }
        if let Some(m) = item.metadata {
            if !m.get().starts_with("{") {
                return Err(bad(format!(
                    "\"metadata\" must be an object, got {}",
                    m.get()
                )));
            }
        }
        self.row += 1;
        Ok(Record {
            row,
            line: Some(line),
            item: Item::Json {
                id: item.id,
                vector: item.vector.to_owned(),
                metadata: item.metadata.map(|m| m.to_owned()),
            },
        })
    }
}

impl Reader for Jsonl {
    fn dim(&mut self) -> Result<Option<usize>, ReadError> {
        if self.dim.is_none() && self.peeked.is_none() {
            self.peeked = self.next_record()?;
        }
        Ok(self.dim)
    }

    fn total_rows(&self) -> Option<u64> {
        self.total
    }

    fn skip(&mut self, n: u64) -> Result<u64, ReadError> {
        let mut skipped = 0;
        if n > 0 && self.peeked.take().is_some() {
            skipped += 1;
            // The peeked row fixed the dimension; the next row read sets it again.
            self.dim = None;
        }
        while skipped < n && self.next_line()? {
            self.row += 1;
            skipped += 1;
        }
        Ok(skipped)
    }

    fn next_record(&mut self) -> Result<Option<Record>, ReadError> {
        if let Some(r) = self.peeked.take() {
            return Ok(Some(r));
        }
        if !self.next_line()? {
            return Ok(None);
        }
        self.parse().map(Some)
    }
}

/// Non-blank lines of a JSON Lines file, counted with a quick byte scan.
fn count_jsonl_rows(name: &str, path: &Path) -> Result<u64, ReadError> {
    let mut file =
        File::open(path).map_err(|e| ReadError::File(format!("cannot open {name}: {e}")))?;
    let mut buf = vec![0u8; 1 << 20];
    let (mut rows, mut blank) = (0u64, true);
    loop {
        let n = file
            .read(&mut buf)
            .map_err(|e| ReadError::File(format!("cannot read {name}: {e}")))?;
        if n == 0 {
            break;
        }
        for &b in &buf[..n] {
            if b == b'\n' {
                if !blank {
                    rows += 1;
                }
                blank = true;
            } else if !b.is_ascii_whitespace() {
                blank = false;
            }
        }
    }
    Ok(rows + u64::from(!blank))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::io::Write;

    /// A file holding `bytes`, opened for reading from its start, and its length.
    fn file_of(bytes: &[u8]) -> (tempfile::NamedTempFile, File, u64) {
        let mut tmp = tempfile::NamedTempFile::new().unwrap();
        tmp.write_all(bytes).unwrap();
        let file = File::open(tmp.path()).unwrap();
        (tmp, file, bytes.len() as u64)
    }

    /// An `.npy` version 1.0 preamble and header `dict`, then `data` bytes.
    fn npy_v1(dict: &str, data: usize) -> Vec<u8> {
        let mut out = b"\x93NUMPY\x01\x00".to_vec();
        out.extend((dict.len() as u16).to_le_bytes());
        out.extend(dict.as_bytes());
        out.extend(vec![0u8; data]);
        out
    }

    #[test]
    fn header_text_and_data_start_are_read_from_a_v1_file() {
        let dict = "{'descr': '<f4', 'fortran_order': False, 'shape': (2, 3), }";
        let (_tmp, mut file, len) = file_of(&npy_v1(dict, 24));
        let (text, data_start) = read_npy_header_text(&mut file, len).unwrap();
        assert_eq!(text, dict);
        assert_eq!(data_start, 10 + dict.len() as u64);
    }

    #[test]
    fn header_framing_errors_say_what_is_wrong() {
        let cases: [(Vec<u8>, &str); 4] = [
            (b"\x93NUMPY".to_vec(), "too short"),
            (b"NOTNUMPY\x10\x00{}".to_vec(), "magic"),
            (b"\x93NUMPY\x04\x00\x02\x00{}".to_vec(), "version 4.0"),
            (b"\x93NUMPY\x01\x00\xff\x00{}".to_vec(), "claims 255 bytes"),
        ];
        for (bytes, expected) in cases {
            let (_tmp, mut file, len) = file_of(&bytes);
            let err = read_npy_header_text(&mut file, len).unwrap_err();
            assert!(err.contains(expected), "{err:?} lacks {expected:?}");
        }
    }

    #[test]
    fn a_2d_little_endian_float32_c_order_header_gives_its_shape() {
        let dict = parse_npy_dict("{'descr': '<f4', 'fortran_order': False, 'shape': (5, 384), }")
            .unwrap();
        assert_eq!(npy_shape(&dict), Ok((5, 384)));
    }

    #[test]
    fn other_headers_are_refused_naming_why() {
        for (text, expected) in [
            (
                "{'descr': '<f8', 'fortran_order': False, 'shape': (5, 4)}",
                "float64",
            ),
            (
                "{'descr': '<f4', 'fortran_order': True, 'shape': (5, 4)}",
                "fortran_order is True",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (5,)}",
                "1-d",
            ),
            (
                "{'descr': '<f4', 'fortran_order': False, 'shape': (5, 0)}",
                "must be 1-",
            ),
            ("{'fortran_order': False, 'shape': (5, 4)}", "no 'descr'"),
        ] {
            let err = npy_shape(&parse_npy_dict(text).unwrap()).unwrap_err();
            assert!(err.contains(expected), "{text}: {err:?} lacks {expected:?}");
        }
        let err = parse_npy_dict("(5, 4)").unwrap_err();
        assert!(err.contains("not a dict"), "{err}");
        let err = parse_npy_dict("{'descr': '<f4'").unwrap_err();
        assert!(err.contains("cannot parse"), "{err}");
    }
}
