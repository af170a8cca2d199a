//! A parser for OpenWrt's UCI file format that reads a file the way `uci` itself does
//! (libuci's file parser in strict mode, the default of the `uci` command): the same
//! words, quotes, escapes, comments, `;` separators, name rules, merges and generated
//! names of anonymous sections. Errors carry file and line.
//!
//! What uci does, and so what this parser does (each rule has a case file with uci's
//! own output under `src/config/testdata/uci/`):
//! - Statements are `config TYPE [NAME]`, `option NAME [VALUE]`, `list NAME [VALUE]`,
//!   `package NAME` (ignored); `c`, `o`, `l`, `p` are accepted abbreviations.
//! - A word is made of unquoted, `'single'` and `"double"` quoted pieces. A backslash
//!   outside single quotes takes the next character literally; at the end of a line it
//!   joins the next line. Quoted values may span lines (the newlines are kept).
//! - `#` outside quotes ends the line, also in the middle of a word (`a#b` is `a`).
//! - `;` ends a statement. After an unquoted word (`option a b; option c d`) uci drops
//!   the rest of the line; after a quoted word or a space it reads the next statement,
//!   and a `;` with nothing after it (and no word glued to its left) is an error.
//! - Section and option names: ASCII letters, digits and `_`. Types: any printable
//!   ASCII except space. Package names: letters, digits, `_` and `-`.
//! - `option x` or `option x ''` sets nothing: a value set before stays (it is not
//!   deleted). `list x` or `list x ''` adds an empty item.
//! - `list x` after `option x` turns the option into a list holding both values;
//!   `option x` after `list x` replaces the list. An option keeps its first position.
//! - A second `config TYPE NAME` with a name already used continues that section (later
//!   options win); with another type it is an error.
//! - An anonymous section is named `cfgNNHHHH` when it is read: NN is the number of
//!   sections in the file so far, this one included (hex, at least two digits), HHHH the
//!   low 16 bits of the DJB hash (seed 5381, `h * 33 + byte`) of its type. That is the
//!   name `uci show -X`, `uci export` and procd's `config_foreach` use. `uci show`
//!   prints `@TYPE[N]` instead: N counts every section of that type, named or not.
//!
//! Where tunbox differs on purpose: an unterminated quote is reported at the line where
//! the statement holding it starts (uci names the end of the file); a last line without a newline is counted
//! (uci does not); a NUL byte is an error; a name or value that is not UTF-8 is an
//! error naming the byte (uci passes bytes through, but a device name, path or address
//! changed by a lossy conversion would silently be another one), while comments may
//! hold any bytes; lines uci accepts but ignores are collected in [`UciFile::warnings`].
use super::ConfigError;

/// One `option` or `list` entry (a `list` collects every value given for its name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UciOption {
    pub name: String,
    pub values: Vec<String>,
    pub is_list: bool,
    /// The line that set the value (an `option`), or the line of the first item (a list).
    pub line: usize,
    /// The line of each value (as many as `values`).
    pub lines: Vec<usize>,
}

/// One `config TYPE ['NAME']` block (all blocks of that name, when it is repeated).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub kind: String,
    /// The given name, or for an anonymous section the `cfgNNHHHH` name uci gives it.
    pub name: String,
    /// Line of the (first) `config` statement.
    pub line: usize,
    pub options: Vec<UciOption>,
    /// No name was given in the file.
    pub anonymous: bool,
    /// Position among the file's sections of the same type (N in `@TYPE[N]`).
    pub index: usize,
}

impl Section {
    pub fn option(&self, name: &str) -> Option<&UciOption> {
        self.options.iter().find(|o| o.name == name)
    }

    /// The name `uci show` prints: the given name, or `@TYPE[N]` for an anonymous one.
    pub fn shown_name(&self) -> String {
        if self.anonymous {
            format!("@{}[{}]", self.kind, self.index)
        } else {
            self.name.clone()
        }
    }

    /// For messages: `lab`, or `cfg02d3bb (@tunnel[1])` for an anonymous section.
    pub fn label(&self) -> String {
        if self.anonymous {
            format!("{} ({})", self.name, self.shown_name())
        } else {
            self.name.clone()
        }
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UciFile {
    pub path: String,
    pub sections: Vec<Section>,
    /// Lines uci accepts but that probably do not do what was meant (an option without
    /// a value, text that uci drops after `;`).
    pub warnings: Vec<ConfigError>,
}

impl UciFile {
    /// Finds a section the way `uci get tunbox.NAME` does: by name (given, or the
    /// `cfgNNHHHH` name of an anonymous section), or as `@TYPE[N]` / `@TYPE[-N]`
    /// (N-th section of that type, counted from the end when negative; `@[N]` counts
    /// sections of every type).
    pub fn section(&self, name: &str) -> Option<&Section> {
        if valid_name(name) {
            return self.sections.iter().find(|s| s.name == name);
        }
        let (kind, idx) = parse_ref(name)?;
        let of_kind = |s: &&Section| kind.is_empty() || s.kind == kind;
        let idx = match idx {
            i if i < 0 => self.sections.iter().filter(of_kind).count() as i64 + i,
            i => i,
        };
        self.sections
            .iter()
            .filter(of_kind)
            .nth(usize::try_from(idx).ok()?)
    }

    /// Like [`UciFile::section`], with an error that says what the file has instead.
    pub fn lookup(&self, name: &str) -> Result<&Section, ConfigError> {
        if let Some(s) = self.section(name) {
            return Ok(s);
        }
        let why = if !valid_name(name) && parse_ref(name).is_none() {
            " (a section is given by its name, its cfg… id or as @TYPE[N])"
        } else {
            ""
        };
        let have = if self.sections.is_empty() {
            "it has no sections".to_string()
        } else {
            let mut have = String::from("it has: ");
            for (i, s) in self.sections.iter().enumerate() {
                let sep = if i > 0 { ", " } else { "" };
                have.push_str(&format!("{sep}{} ({})", s.label(), s.kind));
            }
            have
        };
        Err(ConfigError::plain(format!(
            "{}: no section '{name}'{why}; {have}",
            self.path
        )))
    }

    /// The file as `uci show PACKAGE` prints it (`extended`), or as `uci -X show`
    /// (anonymous sections by their cfg name).
    pub fn show(&self, package: &str, extended: bool) -> String {
        let mut out = String::new();
        for s in &self.sections {
            let name = if extended {
                s.shown_name()
            } else {
                s.name.clone()
            };
            out.push_str(&format!("{package}.{name}={}\n", s.kind));
            for o in &s.options {
                out.push_str(&format!(
                    "{package}.{name}.{}={}\n",
                    o.name,
                    shell_quote_list(&o.values)
                ));
            }
        }
        out
    }
}

/// `'value'` with `'` written as `'\''`, as uci prints values.
pub fn shell_quote(v: &str) -> String {
    format!("'{}'", v.replace('\'', "'\\''"))
}

/// The values of an option as `uci show` prints them: each quoted, separated by a
/// space. (One loop for `uci show` and `config show`: no Vec of strings to join.)
pub fn shell_quote_list(values: &[String]) -> String {
    let mut s = String::new();
    for (i, v) in values.iter().enumerate() {
        if i > 0 {
            s.push(' ');
        }
        s.push_str(&shell_quote(v));
    }
    s
}

/// uci's rule for section and option names: ASCII letters, digits and `_`, not empty.
pub fn valid_name(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'_')
}

/// uci's rule for section types: printable ASCII except space, not empty.
pub fn valid_type(s: &str) -> bool {
    !s.is_empty() && s.bytes().all(|b| (33..=126).contains(&b))
}

fn valid_package(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// A valid name close to `s`: every character uci does not allow becomes `_`.
pub fn suggest_name(s: &str) -> String {
    let mut name = String::with_capacity(s.len());
    for c in s.chars() {
        name.push(if c.is_ascii_alphanumeric() { c } else { '_' });
    }
    name
}

/// The name uci gives the anonymous section that is the `nth` (1-based) section of
/// its file and has type `kind`.
pub fn anonymous_name(nth: usize, kind: &str) -> String {
    let hash = kind.bytes().fold(5381u32, |h, b| {
        h.wrapping_mul(33).wrapping_add(u32::from(b))
    }) & 0x7fff_ffff;
    format!("cfg{nth:02x}{:04x}", hash & 0xffff)
}

/// Splits `@TYPE[N]` into (TYPE, empty for `@[N]`, N). N is read like C's strtol
/// (leading blanks, a sign); an empty N is 0, as in uci.
fn parse_ref(r: &str) -> Option<(&str, i64)> {
    let (kind, idx) = r.strip_prefix('@')?.split_once('[')?;
    let idx = idx.strip_suffix(']')?;
    if idx.contains(']') || !(kind.is_empty() || valid_type(kind)) {
        return None;
    }
    let blanks = idx.bytes().take_while(|&b| is_space(b)).count();
    let (neg, digits) = match &idx.as_bytes()[blanks..] {
        _ if idx.is_empty() => (false, &[][..]),
        [b'-', d @ ..] => (true, d),
        [b'+', d @ ..] => (false, d),
        d => (false, d),
    };
    if !idx.is_empty() && (digits.is_empty() || !digits.iter().all(u8::is_ascii_digit)) {
        return None;
    }
    let n = digits.iter().fold(0i64, |n, d| {
        n.saturating_mul(10).saturating_add(i64::from(d - b'0'))
    });
    Some((kind, if neg { -n } else { n }))
}

/// Parses the text of a UCI file as `uci` does (strict mode): the first error ends the
/// parse. `path` is only used in messages.
pub fn parse(path: &str, text: impl AsRef<[u8]>) -> Result<UciFile, ConfigError> {
    let mut p = Parser::new(path, text.as_ref(), true);
    p.run();
    match std::mem::take(&mut p.errors).into_iter().next() {
        Some(e) => Err(e),
        None => Ok(p.finish()),
    }
}

/// Parses the whole file and returns every error: a line with an error is skipped (its
/// statements before the error on that line stay, as with `uci -S`), the rest of the
/// file is read as usual.
pub fn parse_all(path: &str, text: impl AsRef<[u8]>) -> (UciFile, Vec<ConfigError>) {
    let mut p = Parser::new(path, text.as_ref(), false);
    p.run();
    let errors = std::mem::take(&mut p.errors);
    (p.finish(), errors)
}

/// What the name being read is checked as.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Field {
    Value,
    SectionName,
    OptionName,
    Package,
}

/// Why a statement failed: the message, and the line to report when it is not the
/// line being read.
struct Fail {
    msg: String,
    line: Option<usize>,
}

fn fail(msg: impl Into<String>) -> Fail {
    Fail {
        msg: msg.into(),
        line: None,
    }
}

/// `'s'` for a message, control characters made visible (`\n`, `\t`, `\r`, `?`).
/// uci's statements: (short form, keyword, usage). A table searched by a loop, for the
/// parser and its error messages alike (size).
const KEYWORDS: [(&str, &str, &str); 4] = [
    ("p", "package", "package NAME"),
    ("c", "config", "config TYPE ['NAME']"),
    ("o", "option", "option NAME 'VALUE'"),
    ("l", "list", "list NAME 'VALUE'"),
];

/// The keyword `word` is (either form) and its usage.
fn keyword(word: &[u8]) -> Option<(&'static str, &'static str)> {
    KEYWORDS
        .iter()
        .find(|(short, long, _)| word == short.as_bytes() || word == long.as_bytes())
        .map(|&(_, kw, usage)| (kw, usage))
}

fn shown(s: &str) -> String {
    let mut out = String::from("'");
    for c in s.chars() {
        match c {
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if c < ' ' || c == '\x7f' => out.push('?'),
            c => out.push(c),
        }
    }
    out.push('\'');
    out
}

/// `b` without the blanks (uci's isspace) at both ends.
fn trim_blank(mut b: &[u8]) -> &[u8] {
    while let [first, rest @ ..] = b {
        if !is_space(*first) {
            break;
        }
        b = rest;
    }
    while let [rest @ .., last] = b {
        if !is_space(*last) {
            break;
        }
        b = rest;
    }
    b
}

fn is_space(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\x0b' | b'\x0c' | b'\r')
}

/// The reader. Like libuci it works on a line buffer that it edits in place (a word is
/// copied over its own quotes and backslashes and ended with a 0 byte; 0 ends the
/// buffer), because some of uci's outcomes (what happens after `;`) follow from that.
struct Parser<'t> {
    path: &'t str,
    lines: std::slice::SplitInclusive<'t, u8, fn(&u8) -> bool>,
    buf: Vec<u8>,
    pos: usize,
    /// Length of the buffer after the last successful read.
    filled: usize,
    /// Lines read so far (the line being parsed).
    line: usize,
    /// Line where the statement being parsed started.
    stmt_line: usize,
    stop_at_first: bool,
    sections: Vec<Section>,
    current: Option<usize>,
    warnings: Vec<ConfigError>,
    errors: Vec<ConfigError>,
}

impl<'t> Parser<'t> {
    fn new(path: &'t str, text: &'t [u8], stop_at_first: bool) -> Self {
        let newline: fn(&u8) -> bool = |&b| b == b'\n';
        Parser {
            path,
            lines: text.split_inclusive(newline),
            buf: vec![0],
            pos: 0,
            filled: 0,
            line: 0,
            stmt_line: 0,
            stop_at_first,
            sections: Vec::new(),
            current: None,
            warnings: Vec::new(),
            errors: Vec::new(),
        }
    }

    fn finish(mut self) -> UciFile {
        for i in 0..self.sections.len() {
            let (before, rest) = self.sections.split_at_mut(i);
            rest[0].index = before.iter().filter(|s| s.kind == rest[0].kind).count();
        }
        UciFile {
            path: self.path.to_string(),
            sections: self.sections,
            warnings: self.warnings,
        }
    }

    fn run(&mut self) {
        loop {
            self.pos = 0;
            if !self.read_line(0) {
                return;
            }
            if self.buf[..self.buf.len() - 1].contains(&0) {
                self.errors.push(ConfigError::at(
                    self.path,
                    self.line,
                    "NUL byte in the line (is this a text file?)",
                ));
                if self.stop_at_first {
                    return;
                }
                continue;
            }
            if let Err(f) = self.statement_line() {
                let line = f.line.unwrap_or(self.line);
                self.errors.push(ConfigError::at(self.path, line, f.msg));
                if self.stop_at_first {
                    return;
                }
            }
        }
    }

    fn at(&self, i: usize) -> u8 {
        self.buf.get(i).copied().unwrap_or(0)
    }

    fn put(&mut self, i: usize, b: u8) {
        if let Some(x) = self.buf.get_mut(i) {
            *x = b;
        }
    }

    fn cur(&self) -> u8 {
        self.at(self.pos)
    }

    /// Reads the next line into the buffer at `offset` (dropping what was there).
    /// Returns false at the end of the text (the buffer then ends at `offset`).
    fn read_line(&mut self, offset: usize) -> bool {
        self.buf.truncate(offset.min(self.buf.len()));
        let got = match self.lines.next() {
            Some(l) => {
                self.buf.extend_from_slice(l);
                self.filled = self.buf.len();
                self.line += 1;
                true
            }
            None => false,
        };
        self.buf.push(0);
        got
    }

    /// The 0-ended string starting at `at`.
    fn string(&self, at: usize) -> String {
        let end = self.buf[at.min(self.buf.len())..]
            .iter()
            .position(|&b| b == 0)
            .map_or(self.buf.len(), |n| at + n);
        String::from_utf8_lossy(&self.buf[at.min(end)..end]).into_owned()
    }

    /// The first byte (as `0xNN`) that makes the 0-ended string at `at` not UTF-8.
    fn not_utf8(&self, at: usize) -> Option<String> {
        let rest = &self.buf[at.min(self.buf.len())..];
        let word = &rest[..rest.iter().position(|&b| b == 0).unwrap_or(rest.len())];
        let e = std::str::from_utf8(word).err()?;
        Some(format!("0x{:02x}", word[e.valid_up_to()]))
    }

    fn skip_space(&mut self) {
        while self.cur() != 0 && is_space(self.cur()) {
            self.pos += 1;
        }
    }

    /// Copies the byte at the read position to `target`.
    fn copy(&mut self, target: &mut usize) {
        let b = self.cur();
        self.put(*target, b);
        *target += 1;
        self.pos += 1;
    }

    /// After a backslash: true when the next byte is to be taken literally, false when
    /// the backslash ended the line and the next line was joined.
    fn backslash(&mut self) -> bool {
        self.pos += 1;
        let c = self.cur();
        let crlf_end = c == b'\r' && self.at(self.pos + 1) == b'\n' && self.at(self.pos + 2) == 0;
        if c == 0 || c == b'\n' || crlf_end {
            let at = self.pos;
            self.read_line(at);
            return false;
        }
        true
    }

    fn quoted(&mut self, target: &mut usize, quote: u8) -> Result<(), Fail> {
        let opened = self.line;
        self.pos += 1;
        loop {
            match self.cur() {
                c if c == quote => {
                    self.pos += 1;
                    return Ok(());
                }
                0 => {
                    let at = self.pos;
                    self.read_line(at);
                    if self.cur() == 0 {
                        let kind = if quote == b'"' { "double" } else { "single" };
                        // The quote that runs to the end is often not the one that was
                        // left open: `option a 'x` + newline + `option b 'y'` pairs
                        // the quotes across the lines, so the statement's value goes on
                        // and the last quote opened further down. The mistake is where
                        // that statement starts.
                        let msg = if self.stmt_line == opened {
                            format!(
                                "unterminated {kind} quote (the value opened on this line runs to the end of the file)"
                            )
                        } else {
                            format!(
                                "unterminated {kind} quote: the value of the statement on this line runs to the end of the file \
                                 (its quotes pair up across lines {}-{opened}, so a quote is probably missing on this line)",
                                self.stmt_line
                            )
                        };
                        return Err(Fail {
                            msg,
                            line: Some(self.stmt_line),
                        });
                    }
                }
                b'\\' if quote == b'"' => {
                    if self.backslash() {
                        self.copy(target);
                    }
                }
                _ => self.copy(target),
            }
        }
    }

    /// Reads one word into `target` onwards, ending it with a 0 byte.
    fn word(&mut self, target: &mut usize) -> Result<(), Fail> {
        let mut step_over = true;
        loop {
            match self.cur() {
                b'\'' => self.quoted(target, b'\'')?,
                b'"' => self.quoted(target, b'"')?,
                b'#' => {
                    let at = self.pos;
                    self.put(at, 0);
                    break;
                }
                0 => break,
                b';' => {
                    step_over = false;
                    if *target == self.pos {
                        // The word's end marker lands on the ';': uci loses the rest.
                        self.warn_dropped();
                    }
                    break;
                }
                b'\\' => {
                    if self.backslash() {
                        self.copy(target);
                    }
                }
                _ => self.copy(target),
            }
            if self.cur() == 0 || is_space(self.cur()) {
                break;
            }
        }
        if self.cur() != 0 && step_over {
            self.pos += 1;
        }
        let t = *target;
        self.put(t, 0);
        Ok(())
    }

    fn warn_dropped(&mut self) {
        let rest = self.string(self.pos + 1);
        let rest = String::from_utf8_lossy(trim_blank(rest.as_bytes()));
        if !rest.is_empty() && !rest.starts_with('#') {
            self.warnings.push(ConfigError::at(
                self.path,
                self.line,
                format!(
                    "uci ignores {} after the ';' (a ';' right after an unquoted value ends the line): put a space before the ';' or quote the value",
                    shown(&rest)
                ),
            ));
        }
    }

    /// Reads the next argument; returns where its text starts.
    fn arg(&mut self, required: Option<&str>, field: Field) -> Result<String, Fail> {
        self.skip_space();
        let start = self.pos;
        let mut target = start;
        if self.cur() == b';' {
            self.put(start, 0);
            self.pos += 1;
        } else {
            self.word(&mut target)?;
        }
        let s = self.string(start);
        if let Some(bad) = self.not_utf8(start) {
            return Err(fail(format!(
                "byte {bad} in {} is not UTF-8: tunbox reads names and values as UTF-8 and \
                 will not guess what a device name, path or address in another encoding means \
                 (write the file as UTF-8; comments may hold any bytes)",
                shown(&s)
            )));
        }
        if s.is_empty() {
            return match required {
                Some(usage) => Err(fail(format!("expected: {usage}"))),
                None => Ok(s),
            };
        }
        let (what, ok, allowed) = match field {
            Field::Value => return Ok(s),
            Field::SectionName => ("section name", valid_name(&s), " and _"),
            Field::OptionName => ("option name", valid_name(&s), " and _"),
            Field::Package => ("package name", valid_package(&s), ", _ and -"),
        };
        if !ok {
            return Err(fail(format!(
                "{} is not a valid {what}: uci allows only letters, digits{allowed} (rename it to '{}')",
                shown(&s),
                suggest_name(&s)
            )));
        }
        Ok(s)
    }

    /// Strict mode: nothing but a `;` may follow the statement's arguments.
    fn end_of_statement(&mut self, usage: &str) -> Result<(), Fail> {
        self.skip_space();
        let extra = self.arg(None, Field::Value)?;
        if !extra.is_empty() {
            return Err(fail(format!(
                "too many arguments ({} is one too many): expected: {usage} (quote values that contain spaces)",
                shown(&extra)
            )));
        }
        Ok(())
    }

    fn statement_line(&mut self) -> Result<(), Fail> {
        self.stmt_line = self.line;
        self.skip_space();
        loop {
            // The keyword ends at a space or tab (only).
            let start = self.pos;
            let mut w = start;
            while matches!(self.at(w), b' ' | b'\t') {
                w += 1;
            }
            if self.at(w) == 0 {
                return Ok(());
            }
            let mut e = w;
            while !matches!(self.at(e), 0 | b' ' | b'\t') {
                e += 1;
            }
            let word = self.buf[w..e].to_vec();
            self.put(e, 0);
            if word.first() == Some(&b'#') {
                return Ok(());
            }
            let Some((kw, usage)) = keyword(&word) else {
                return Err(self.unknown_keyword(&word));
            };
            if matches!(kw, "option" | "list") && self.current.is_none() {
                return Err(fail(format!("'{kw}' before any 'config' line")));
            }
            // Step over the keyword and the byte after it, which must exist.
            if self.pos + (e - start) + 1 > self.filled {
                return Err(fail(format!("expected: {usage}")));
            }
            self.pos += e - start + 1;
            match kw {
                "package" => {
                    self.arg(Some(usage), Field::Package)?;
                    self.end_of_statement(usage)?;
                }
                "config" => {
                    let kind = self.arg(Some(usage), Field::Value)?;
                    if !valid_type(&kind) {
                        return Err(fail(format!(
                            "{} is not a valid section type: uci allows printable ASCII without spaces (rename it to '{}')",
                            shown(&kind),
                            suggest_name(&kind)
                        )));
                    }
                    let name = self.arg(None, Field::SectionName)?;
                    self.end_of_statement(usage)?;
                    self.open_section(kind, name)?;
                }
                _ => {
                    let name = self.arg(Some(usage), Field::OptionName)?;
                    let value = self.arg(None, Field::Value)?;
                    self.end_of_statement(usage)?;
                    self.set(kw == "list", name, value);
                }
            }
        }
    }

    fn unknown_keyword(&self, word: &[u8]) -> Fail {
        let w = String::from_utf8_lossy(trim_blank(word));
        let t: &str = &w;
        if t.is_empty() {
            return fail("nothing follows the ';' (uci rejects a ';' that ends a line after a quoted value or a space): remove it");
        }
        if let Some((_, usage)) = keyword(t.as_bytes()) {
            return fail(format!("expected: {usage}"));
        }
        fail(format!(
            "unknown keyword {} (expected config, option, list or package)",
            shown(t)
        ))
    }

    fn open_section(&mut self, kind: String, name: String) -> Result<(), Fail> {
        if !name.is_empty() {
            if let Some(i) = self.sections.iter().position(|s| s.name == name) {
                let s = &self.sections[i];
                if s.kind != kind {
                    return Err(fail(format!(
                        "section '{name}' is already a '{}' section (line {}): uci rejects it again as '{kind}'; rename one of them",
                        s.kind, s.line
                    )));
                }
                // The same name again continues that section.
                self.current = Some(i);
                return Ok(());
            }
        }
        let nth = self.sections.len() + 1;
        let anonymous = name.is_empty();
        let name = if anonymous {
            anonymous_name(nth, &kind)
        } else {
            name
        };
        self.sections.push(Section {
            kind,
            name,
            line: self.stmt_line,
            options: Vec::new(),
            anonymous,
            index: 0,
        });
        self.current = Some(self.sections.len() - 1);
        Ok(())
    }

    fn set(&mut self, is_list: bool, name: String, value: String) {
        let line = self.stmt_line;
        let Some(sec) = self.current.and_then(|i| self.sections.get_mut(i)) else {
            return;
        };
        let existing = sec.options.iter_mut().find(|o| o.name == name);
        if is_list {
            match existing {
                Some(o) => {
                    o.values.push(value);
                    o.lines.push(line);
                    o.is_list = true;
                }
                None => sec.options.push(UciOption {
                    name,
                    values: vec![value],
                    is_list: true,
                    line,
                    lines: vec![line],
                }),
            }
            return;
        }
        if value.is_empty() {
            let had = if existing.is_some() {
                "; the value set before stays"
            } else {
                ""
            };
            self.warnings.push(ConfigError::at(
                self.path,
                line,
                format!("option '{name}' has no value: uci ignores this line (it neither sets nor deletes '{name}'{had})"),
            ));
            return;
        }
        match existing {
            Some(o) => {
                o.values = vec![value];
                o.lines = vec![line];
                o.is_list = false;
                o.line = line;
            }
            None => sec.options.push(UciOption {
                name,
                values: vec![value],
                is_list: false,
                line,
                lines: vec![line],
            }),
        }
    }
}

#[cfg(test)]
#[path = "uci_tests.rs"]
mod tests;
