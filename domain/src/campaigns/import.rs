//! Reading a campaign's CSV: streaming, with each bad row reported by its line in the file
//! (the header is line 1; a quoted field spanning lines counts every line it spans).
//!
//! Accepts a UTF-8 BOM, CRLF, quoted fields with separators and newlines, `,` `;` or tab
//! separators (detected from the header), and Latin-1 files (any bytes that are not
//! UTF-8). Headers are case-insensitive with aliases; every other column becomes a per-row
//! variable passed to the provider.

use std::collections::HashSet;
use std::io::Read;

use serde_json::{Map, Value};

use super::window::parse_zone;
use crate::error::{DomainError, DomainResult};
use crate::phone::{PhoneNumber, Region};

/// Rows one import may hold.
pub const MAX_ROWS: usize = 200_000;
/// Bytes one file may have.
pub const MAX_FILE_BYTES: usize = 20 * 1024 * 1024;
/// Columns one file may have.
const MAX_COLUMNS: usize = 100;
/// A row's variables, serialised, at most.
const MAX_VARIABLE_BYTES: usize = 8 * 1024;
/// Of the raw number kept in a row error.
const MAX_RAW_CHARS: usize = 64;

const PHONE: &[&str] = &[
    "phone",
    "phone_number",
    "contact_number",
    "mobile",
    "number",
];
const NAME: &[&str] = &["name", "full_name"];
const FIRST: &[&str] = &["first_name", "firstname"];
const LAST: &[&str] = &["last_name", "lastname", "surname"];
const EMAIL: &[&str] = &["email", "email_address", "e_mail"];
const ZONE: &[&str] = &["timezone", "time_zone", "tz"];

/// Why a row was not accepted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum RowProblem {
    MissingPhone,
    UnparseablePhone,
    DuplicateInFile,
    DoNotCallList,
    CustomerDoNotCall,
    UnknownTimezone,
    TooLarge,
    /// A WhatsApp campaign's row without a value for one of the template's parameters.
    MissingParameter,
}

impl RowProblem {
    /// The problem as a code, for programs.
    pub fn code(self) -> &'static str {
        match self {
            RowProblem::MissingPhone => "MISSING_PHONE",
            RowProblem::UnparseablePhone => "UNPARSEABLE_PHONE",
            RowProblem::DuplicateInFile => "DUPLICATE_IN_FILE",
            RowProblem::DoNotCallList => "DO_NOT_CALL_LIST",
            RowProblem::CustomerDoNotCall => "CUSTOMER_DO_NOT_CALL",
            RowProblem::UnknownTimezone => "UNKNOWN_TIMEZONE",
            RowProblem::TooLarge => "TOO_LARGE",
            RowProblem::MissingParameter => "MISSING_PARAMETER",
        }
    }

    pub fn reason(self) -> &'static str {
        match self {
            RowProblem::MissingPhone => "missing phone",
            RowProblem::UnparseablePhone => "unparseable phone",
            RowProblem::DuplicateInFile => "duplicate in file",
            RowProblem::DoNotCallList => "on the do-not-call list",
            RowProblem::CustomerDoNotCall => "customer marked DO_NOT_CALL",
            RowProblem::UnknownTimezone => "unknown timezone",
            RowProblem::TooLarge => {
                "row too large (variables over 8 KiB, or a parameter over 1024 characters)"
            }
            RowProblem::MissingParameter => "a template parameter's column is empty",
        }
    }
}

/// One rejected row.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RowError {
    pub line: u64,
    /// The number as written in the file (shortened if long).
    pub phone_number: String,
    pub problem: RowProblem,
}

/// One accepted row.
#[derive(Debug, Clone)]
pub struct ImportRow {
    pub line: u64,
    /// The number as written (shortened if long), for the report.
    pub raw: String,
    pub phone: PhoneNumber,
    pub name: Option<String>,
    pub email: Option<String>,
    pub timezone: Option<String>,
    pub variables: Option<Value>,
}

struct Columns {
    phone: usize,
    name: Option<usize>,
    first: Option<usize>,
    last: Option<usize>,
    email: Option<usize>,
    zone: Option<usize>,
    /// (index, header as written) of every other column.
    others: Vec<(usize, String)>,
    /// (index, name as the campaign gives it) of the columns that fill a template's
    /// parameters; each row must have them.
    parameters: Vec<(usize, String)>,
}

/// The longest template parameter a row may give.
pub const MAX_PARAMETER_CHARS: usize = 1024;

fn normalise(h: &str) -> String {
    h.trim()
        .to_ascii_lowercase()
        .chars()
        .map(|c| if c == ' ' || c == '-' { '_' } else { c })
        .collect()
}

impl Columns {
    fn of(headers: &csv::StringRecord) -> DomainResult<Columns> {
        if headers.len() > MAX_COLUMNS {
            return Err(DomainError::invalid(
                "csv",
                format!(
                    "the file has {} columns; at most {MAX_COLUMNS}",
                    headers.len()
                ),
            ));
        }
        let names: Vec<String> = headers.iter().map(normalise).collect();
        let find = |aliases: &[&str]| names.iter().position(|n| aliases.contains(&n.as_str()));
        let phone = find(PHONE).ok_or_else(|| {
            DomainError::invalid(
                "csv",
                "no phone column: name one phone, phone_number, contact_number, mobile or number",
            )
        })?;
        let name = find(NAME);
        let first = find(FIRST);
        let last = find(LAST);
        let email = find(EMAIL);
        let zone = find(ZONE);
        let known = [Some(phone), name, first, last, email, zone];
        let others = headers
            .iter()
            .enumerate()
            .filter(|(i, h)| !known.contains(&Some(*i)) && !h.trim().is_empty())
            .map(|(i, h)| (i, h.trim().to_owned()))
            .collect();
        Ok(Columns {
            phone,
            name,
            first,
            last,
            email,
            zone,
            others,
            parameters: Vec::new(),
        })
    }
}

/// Turns bytes that are not UTF-8 into UTF-8 as Latin-1, a byte at a time, so the file is
/// never held twice.
struct Latin1<'a> {
    bytes: &'a [u8],
    pending: Option<u8>,
}

impl Read for Latin1<'_> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let mut n = 0;
        while n < buf.len() {
            if let Some(b) = self.pending.take() {
                buf[n] = b;
                n += 1;
                continue;
            }
            let Some((&b, rest)) = self.bytes.split_first() else {
                break;
            };
            self.bytes = rest;
            if b < 0x80 {
                buf[n] = b;
            } else {
                buf[n] = 0xC0 | (b >> 6);
                self.pending = Some(0x80 | (b & 0x3F));
            }
            n += 1;
        }
        Ok(n)
    }
}

/// The separator the header uses most, outside quotes.
fn detect_delimiter(bytes: &[u8]) -> u8 {
    let mut counts = [0usize; 3];
    let mut quoted = false;
    for &b in bytes.iter().take(64 * 1024) {
        match b {
            b'"' => quoted = !quoted,
            b'\n' | b'\r' if !quoted => break,
            b',' if !quoted => counts[0] += 1,
            b';' if !quoted => counts[1] += 1,
            b'\t' if !quoted => counts[2] += 1,
            _ => {}
        }
    }
    let best = (0..3).max_by_key(|i| (counts[*i], 3 - i)).unwrap_or(0);
    [b',', b';', b'\t'][best]
}

/// Turns a record's starting offset in the decoded stream into its line in the file.
/// Counted here because the csv crate's own line counter is off by one after CRLF.
struct Lines<'a> {
    bytes: &'a [u8],
    /// Whether bytes of 0x80 and above are two bytes in the decoded stream (Latin-1).
    widened: bool,
    at: usize,
    decoded_at: u64,
    newlines: u64,
}

impl Lines<'_> {
    /// The line of the first byte at or after `decoded` that does not end a line; offsets
    /// only grow, so the whole file is walked once.
    fn line_at(&mut self, decoded: u64) -> u64 {
        while self.decoded_at < decoded && self.at < self.bytes.len() {
            let b = self.bytes[self.at];
            self.decoded_at += if self.widened && b >= 0x80 { 2 } else { 1 };
            self.newlines += u64::from(b == b'\n');
            self.at += 1;
        }
        while let Some(&b) = self
            .bytes
            .get(self.at)
            .filter(|b| **b == b'\r' || **b == b'\n')
        {
            self.decoded_at += 1;
            self.newlines += u64::from(b == b'\n');
            self.at += 1;
        }
        self.newlines + 1
    }
}

fn raw_of(s: &str) -> String {
    s.trim().chars().take(MAX_RAW_CHARS).collect()
}

/// A streaming reader of one file's rows.
pub struct Rows<'a> {
    reader: csv::Reader<Box<dyn Read + Send + 'a>>,
    columns: Columns,
    region: Region,
    seen: HashSet<String>,
    record: csv::StringRecord,
    count: usize,
    lines: Lines<'a>,
}

/// What one row turned out to be.
pub enum Parsed {
    Row(ImportRow),
    Rejected(RowError),
}

impl<'a> Rows<'a> {
    /// Opens `bytes`; an empty file, binary data or a file without a phone column is one
    /// error for the whole file.
    pub fn open(bytes: &'a [u8], region: Region) -> DomainResult<Rows<'a>> {
        let bytes = bytes.strip_prefix(b"\xEF\xBB\xBF").unwrap_or(bytes);
        if bytes.iter().all(|b| b.is_ascii_whitespace()) {
            return Err(DomainError::invalid("csv", "the file is empty"));
        }
        if bytes.len() > MAX_FILE_BYTES {
            return Err(DomainError::invalid(
                "csv",
                format!(
                    "the file has {} bytes; at most {MAX_FILE_BYTES}",
                    bytes.len()
                ),
            ));
        }
        // Anywhere in the file: a NUL cannot be stored, and text has none.
        if bytes.contains(&0) {
            return Err(DomainError::invalid(
                "csv",
                "the file is not text (it contains NUL bytes); upload a CSV file",
            ));
        }
        let delimiter = detect_delimiter(bytes);
        let utf8 = std::str::from_utf8(bytes).is_ok();
        let source: Box<dyn Read + Send + 'a> = if utf8 {
            Box::new(bytes)
        } else {
            Box::new(Latin1 {
                bytes,
                pending: None,
            })
        };
        let mut reader = csv::ReaderBuilder::new()
            .delimiter(delimiter)
            .flexible(true)
            .has_headers(true)
            .from_reader(source);
        let headers = reader
            .headers()
            .map_err(|e| DomainError::invalid("csv", format!("the header cannot be read: {e}")))?
            .clone();
        let columns = Columns::of(&headers)?;
        Ok(Rows {
            reader,
            columns,
            region,
            seen: HashSet::new(),
            record: csv::StringRecord::new(),
            count: 0,
            lines: Lines {
                bytes,
                widened: !utf8,
                at: 0,
                decoded_at: 0,
                newlines: 0,
            },
        })
    }

    /// Makes every row need a value in each of `names` (columns, matched like headers),
    /// kept in its variables under the name as given; a name the header lacks is an error
    /// for the whole file.
    pub fn require_columns(&mut self, headers: &[String]) -> DomainResult<()> {
        let names: Vec<String> = self
            .reader
            .headers()
            .map_err(|e| DomainError::invalid("csv", format!("the header cannot be read: {e}")))?
            .iter()
            .map(normalise)
            .collect();
        for wanted in headers {
            let i = names
                .iter()
                .position(|n| *n == normalise(wanted))
                .ok_or_else(|| {
                    DomainError::invalid(
                        "csv",
                        format!(
                            "no column named {:?} for a template parameter",
                            wanted.chars().take(64).collect::<String>()
                        ),
                    )
                })?;
            self.columns.parameters.push((i, wanted.clone()));
        }
        Ok(())
    }

    /// The next row, `None` at the end.
    pub fn next_row(&mut self) -> DomainResult<Option<Parsed>> {
        loop {
            let more = self.reader.read_record(&mut self.record).map_err(|e| {
                let line = e.position().map_or(0, |p| p.line());
                DomainError::invalid("csv", format!("line {line}: {e}"))
            })?;
            if !more {
                return Ok(None);
            }
            if self.record.iter().all(|f| f.trim().is_empty()) {
                continue;
            }
            self.count += 1;
            if self.count > MAX_ROWS {
                return Err(DomainError::invalid(
                    "csv",
                    format!("the file has more than {MAX_ROWS} rows"),
                ));
            }
            return Ok(Some(self.parse_record()));
        }
    }

    fn parse_record(&mut self) -> Parsed {
        let r = &self.record;
        let c = &self.columns;
        let line = self.lines.line_at(r.position().map_or(0, |p| p.byte()));
        let field = |i: Option<usize>| {
            i.and_then(|i| r.get(i))
                .map(str::trim)
                .filter(|s| !s.is_empty())
        };
        let raw = field(Some(c.phone)).unwrap_or("");
        let reject = |problem| {
            Parsed::Rejected(RowError {
                line,
                phone_number: raw_of(raw),
                problem,
            })
        };
        if raw.is_empty() {
            return reject(RowProblem::MissingPhone);
        }
        let Ok(phone) = PhoneNumber::parse(raw, self.region) else {
            return reject(RowProblem::UnparseablePhone);
        };
        let timezone = match field(c.zone) {
            None => None,
            Some(z) => match parse_zone(z) {
                Some(tz) => Some(tz.name().to_owned()),
                None => return reject(RowProblem::UnknownTimezone),
            },
        };
        let name = field(c.name).map(str::to_owned).or_else(|| {
            let parts: Vec<&str> = [field(c.first), field(c.last)]
                .into_iter()
                .flatten()
                .collect();
            (!parts.is_empty()).then(|| parts.join(" "))
        });
        let mut vars = Map::new();
        for (i, header) in &c.others {
            if let Some(v) = field(Some(*i)) {
                vars.insert(header.clone(), Value::String(v.to_owned()));
            }
        }
        for (i, key) in &c.parameters {
            match field(Some(*i)) {
                None => return reject(RowProblem::MissingParameter),
                Some(v) if v.chars().count() > MAX_PARAMETER_CHARS => {
                    return reject(RowProblem::TooLarge);
                }
                Some(v) => {
                    vars.insert(key.clone(), Value::String(v.to_owned()));
                }
            }
        }
        if let Some(n) = &name {
            vars.entry("customer_name")
                .or_insert_with(|| Value::String(n.clone()));
        }
        let variables = (!vars.is_empty()).then_some(Value::Object(vars));
        if variables
            .as_ref()
            .is_some_and(|v| v.to_string().len() > MAX_VARIABLE_BYTES)
        {
            return reject(RowProblem::TooLarge);
        }
        if !self.seen.insert(phone.as_str().to_owned()) {
            return reject(RowProblem::DuplicateInFile);
        }
        Parsed::Row(ImportRow {
            line,
            raw: raw_of(raw),
            phone,
            name: name.map(|n| n.chars().take(200).collect()),
            email: field(c.email).map(|e| e.chars().take(254).collect()),
            timezone,
            variables,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn all(bytes: &[u8]) -> DomainResult<(Vec<ImportRow>, Vec<RowError>)> {
        let mut rows = Rows::open(bytes, Region::parse("US").unwrap())?;
        let (mut ok, mut bad) = (Vec::new(), Vec::new());
        while let Some(p) = rows.next_row()? {
            match p {
                Parsed::Row(r) => ok.push(r),
                Parsed::Rejected(e) => bad.push(e),
            }
        }
        Ok((ok, bad))
    }

    #[test]
    fn lines_count_the_header_and_multiline_fields() {
        let csv = "Name,Phone Number,Notes\r\nAda,+1 212 555 0101,\"two\nlines\"\r\nBob,,x\r\nCy,not a number,y\r\nAda again,(212) 555-0101,z\r\n";
        let (ok, bad) = all(csv.as_bytes()).unwrap();
        assert_eq!(ok.len(), 1);
        assert_eq!(ok[0].line, 2);
        assert_eq!(ok[0].phone.as_str(), "+12125550101");
        assert_eq!(ok[0].variables.as_ref().unwrap()["Notes"], "two\nlines");
        let lines: Vec<_> = bad.iter().map(|e| (e.line, e.problem)).collect();
        assert_eq!(
            lines,
            [
                (4, RowProblem::MissingPhone),
                (5, RowProblem::UnparseablePhone),
                (6, RowProblem::DuplicateInFile)
            ]
        );
        assert_eq!(bad[2].phone_number, "(212) 555-0101");
        let lf = csv.replace("\r\n", "\n");
        let (_, bad) = all(lf.as_bytes()).unwrap();
        assert_eq!(bad.iter().map(|e| e.line).collect::<Vec<_>>(), [4, 5, 6]);
        // Blank lines still count, and Latin-1 bytes do not shift the count.
        let (ok, bad) = all(b"phone,city\n\n2125550101,K\xf6ln\n\nx,\xe9\xe9\n").unwrap();
        assert_eq!(ok[0].line, 3);
        assert_eq!(bad[0].line, 5);
    }

    #[test]
    fn separators_bom_and_latin1_are_read() {
        let (ok, _) =
            all("\u{feff}first_name;LAST_NAME;mobile\n Zoë ;Ünal;2125550102\n".as_bytes()).unwrap();
        assert_eq!(ok[0].name.as_deref(), Some("Zoë Ünal"));
        let (ok, _) = all(b"phone\tcity\n2125550103\tK\xf6ln\n").unwrap();
        assert_eq!(ok[0].variables.as_ref().unwrap()["city"], "Köln");
        let (ok, _) = all(b"number,tz\n2125550104,Asia/Kolkata\n").unwrap();
        assert_eq!(ok[0].timezone.as_deref(), Some("Asia/Kolkata"));
        let (_, bad) = all(b"number,tz\n2125550104,Mars/Olympus\n").unwrap();
        assert_eq!(bad[0].problem, RowProblem::UnknownTimezone);
    }

    #[test]
    fn template_parameters_are_required_per_row() {
        let csv = "Phone,First Name,amount\n2125550101,Ada,12\n2125550102,,13\n2125550103,Bo,\n";
        let mut rows = Rows::open(csv.as_bytes(), Region::parse("US").unwrap()).unwrap();
        rows.require_columns(&["first_name".into(), "Amount".into()])
            .unwrap();
        let mut ok = Vec::new();
        let mut bad = Vec::new();
        while let Some(p) = rows.next_row().unwrap() {
            match p {
                Parsed::Row(r) => ok.push(r),
                Parsed::Rejected(e) => bad.push((e.line, e.problem)),
            }
        }
        assert_eq!(ok.len(), 1);
        let vars = ok[0].variables.as_ref().unwrap();
        assert_eq!(vars["first_name"], "Ada");
        assert_eq!(vars["Amount"], "12");
        assert_eq!(
            bad,
            [
                (3, RowProblem::MissingParameter),
                (4, RowProblem::MissingParameter)
            ]
        );
        let mut rows = Rows::open(csv.as_bytes(), Region::parse("US").unwrap()).unwrap();
        assert!(rows.require_columns(&["coupon".into()]).is_err());
    }

    #[test]
    fn whole_file_problems_are_one_error() {
        assert!(all(b"").is_err());
        assert!(all(b"  \n\n").is_err());
        assert!(all(b"name,email\nAda,a@x\n").is_err());
        assert!(all(b"\x00\x01\x02\xff\xfe").is_err());
        assert!(all(&[0x89, b'P', b'N', b'G', 0, 0, 0, 13]).is_err());
    }
}
