//! A parser for OpenWrt's UCI file format (`config`, `option`, `list`, `package`,
//! single/double quotes, backslash escapes outside single quotes, `#` comments).
//! Errors carry file and line.
use super::ConfigError;

/// One `option` or `list` entry (a `list` collects every value given for its name).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct UciOption {
    pub name: String,
    pub values: Vec<String>,
    pub is_list: bool,
    pub line: usize,
}

/// One `config TYPE ['NAME']` block. Anonymous sections get the name `@TYPE[N]` as
/// `uci show` prints them.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Section {
    pub kind: String,
    pub name: String,
    pub line: usize,
    pub options: Vec<UciOption>,
}

impl Section {
    pub fn option(&self, name: &str) -> Option<&UciOption> {
        self.options.iter().find(|o| o.name == name)
    }
}

#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct UciFile {
    pub path: String,
    pub sections: Vec<Section>,
}

impl UciFile {
    pub fn section(&self, name: &str) -> Option<&Section> {
        self.sections.iter().find(|s| s.name == name)
    }
}

/// Splits one line into words: quotes group (and are removed), adjacent quoted and bare
/// pieces join into one word, `#` at the start of a word comments out the rest.
fn words(line: &str) -> Result<Vec<String>, String> {
    let mut out = Vec::new();
    let mut cur = String::new();
    let mut in_word = false;
    let mut chars = line.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '#' if !in_word => break,
            c if c.is_whitespace() => {
                if in_word {
                    out.push(std::mem::take(&mut cur));
                    in_word = false;
                }
            }
            '\'' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('\'') => break,
                        Some(c) => cur.push(c),
                        None => return Err("unterminated single quote".into()),
                    }
                }
            }
            '"' => {
                in_word = true;
                loop {
                    match chars.next() {
                        Some('"') => break,
                        Some('\\') => match chars.next() {
                            Some(c) => cur.push(c),
                            None => return Err("backslash at end of line".into()),
                        },
                        Some(c) => cur.push(c),
                        None => return Err("unterminated double quote".into()),
                    }
                }
            }
            '\\' => {
                in_word = true;
                match chars.next() {
                    Some(c) => cur.push(c),
                    None => return Err("backslash at end of line".into()),
                }
            }
            c => {
                in_word = true;
                cur.push(c);
            }
        }
    }
    if in_word {
        out.push(cur);
    }
    Ok(out)
}

fn valid_name(s: &str) -> bool {
    !s.is_empty()
        && s.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'_' || b == b'-')
}

/// Parses the text of a UCI file. `path` is only used in error messages.
pub fn parse(path: &str, text: &str) -> Result<UciFile, ConfigError> {
    let mut file = UciFile {
        path: path.to_string(),
        sections: Vec::new(),
    };
    let mut anon_counts: Vec<(String, usize)> = Vec::new();
    for (i, raw) in text.lines().enumerate() {
        let line = i + 1;
        let err = |msg: String| ConfigError::at(path, line, msg);
        let w = words(raw).map_err(&err)?;
        let Some(keyword) = w.first() else { continue };
        match keyword.as_str() {
            "package" => {
                if w.len() != 2 {
                    return Err(err("expected: package NAME".into()));
                }
            }
            "config" => {
                if w.len() < 2 || w.len() > 3 {
                    return Err(err("expected: config TYPE ['NAME']".into()));
                }
                let kind = w[1].clone();
                if !valid_name(&kind) {
                    return Err(err(format!("'{kind}' is not a valid section type")));
                }
                let name = match w.get(2) {
                    Some(n) => {
                        if !valid_name(n) {
                            return Err(err(format!(
                                "'{n}' is not a valid section name (letters, digits, _ and - only)"
                            )));
                        }
                        if let Some(prev) = file.sections.iter().find(|s| &s.name == n) {
                            return Err(err(format!(
                                "section '{n}' is defined twice (first at line {})",
                                prev.line
                            )));
                        }
                        n.clone()
                    }
                    None => {
                        let n = match anon_counts.iter_mut().find(|(k, _)| *k == kind) {
                            Some((_, c)) => {
                                *c += 1;
                                *c - 1
                            }
                            None => {
                                anon_counts.push((kind.clone(), 1));
                                0
                            }
                        };
                        format!("@{kind}[{n}]")
                    }
                };
                file.sections.push(Section {
                    kind,
                    name,
                    line,
                    options: Vec::new(),
                });
            }
            kw @ ("option" | "list") => {
                let is_list = kw == "list";
                if w.len() != 3 {
                    return Err(err(format!(
                        "expected: {kw} NAME 'VALUE' (quote values that contain spaces)"
                    )));
                }
                let Some(section) = file.sections.last_mut() else {
                    return Err(err(format!("'{kw}' before any 'config' line")));
                };
                let name = &w[1];
                if !valid_name(name) {
                    return Err(err(format!("'{name}' is not a valid option name")));
                }
                let value = w[2].clone();
                match section.options.iter_mut().find(|o| &o.name == name) {
                    Some(o) if o.is_list != is_list => {
                        return Err(err(format!(
                            "'{name}' is used both as option and as list (line {})",
                            o.line
                        )));
                    }
                    Some(o) if is_list => o.values.push(value),
                    Some(o) => {
                        // uci: a repeated option replaces the earlier value
                        o.values = vec![value];
                        o.line = line;
                    }
                    None => section.options.push(UciOption {
                        name: name.clone(),
                        values: vec![value],
                        is_list,
                        line,
                    }),
                }
            }
            other => {
                return Err(err(format!(
                    "unknown keyword '{other}' (expected config, option, list or package)"
                )))
            }
        }
    }
    Ok(file)
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = r#"
# tunbox example
package tunbox

config reflect 'lab'
	option dev 'tun0'
	option enabled 1   # trailing comment
	list address '198.18.0.1/15'
	list address "2001:2::1/48"
	option user "nobody"

config tunnel wan
	option remote 'peer.example:5555'
	option key_file '/etc/tunbox/my key'
	option dev tbx0
	option dev tbx1

config bridge
	option ifname eth0
config bridge
	option ifname 'eth1'
"#;

    #[test]
    fn parses_sections_options_lists() {
        let f = parse("/etc/config/tunbox", SAMPLE).unwrap();
        assert_eq!(f.sections.len(), 4);
        let lab = f.section("lab").unwrap();
        assert_eq!(lab.kind, "reflect");
        assert_eq!(lab.line, 5);
        assert_eq!(lab.option("dev").unwrap().values, ["tun0"]);
        assert_eq!(lab.option("enabled").unwrap().values, ["1"]);
        let addr = lab.option("address").unwrap();
        assert!(addr.is_list);
        assert_eq!(addr.values, ["198.18.0.1/15", "2001:2::1/48"]);
        assert_eq!(addr.line, 8, "a list keeps the line of its first value");
        let wan = f.section("wan").unwrap();
        assert_eq!(
            wan.option("key_file").unwrap().values,
            ["/etc/tunbox/my key"]
        );
        assert_eq!(
            wan.option("dev").unwrap().values,
            ["tbx1"],
            "last option wins"
        );
        assert_eq!(wan.option("dev").unwrap().line, 16);
        assert_eq!(f.sections[2].name, "@bridge[0]");
        assert_eq!(f.sections[3].name, "@bridge[1]");
        assert_eq!(f.sections[3].option("ifname").unwrap().values, ["eth1"]);
    }

    #[test]
    fn quoting_and_escapes() {
        let f = parse(
            "f",
            "config reflect x\noption a 'it'\\''s'\noption b \"say \\\"hi\\\" # not a comment\"\noption c 'x#y'\n",
        )
        .unwrap();
        let s = f.section("x").unwrap();
        assert_eq!(s.option("a").unwrap().values, ["it's"]);
        assert_eq!(
            s.option("b").unwrap().values,
            ["say \"hi\" # not a comment"]
        );
        assert_eq!(s.option("c").unwrap().values, ["x#y"]);
    }

    #[test]
    fn errors_name_file_and_line() {
        let cases = [
            ("option a b\n", 1, "before any 'config'"),
            (
                "config reflect x\n\toption a 'b\n",
                2,
                "unterminated single quote",
            ),
            (
                "config reflect x\n\toption a \"b\n",
                2,
                "unterminated double quote",
            ),
            (
                "config reflect x\nfrobnicate a b\n",
                2,
                "unknown keyword 'frobnicate'",
            ),
            ("config reflect x\noption a\n", 2, "expected: option NAME"),
            (
                "config reflect x\noption a b c\n",
                2,
                "expected: option NAME",
            ),
            ("config\n", 1, "expected: config TYPE"),
            ("config reflect 'a b'\n", 1, "not a valid section name"),
            (
                "config reflect x\nconfig tunnel x\n",
                2,
                "defined twice (first at line 1)",
            ),
            (
                "config reflect x\noption a 1\nlist a 2\n",
                3,
                "both as option and as list",
            ),
            (
                "config reflect x\noption 'a.b' 1\n",
                2,
                "not a valid option name",
            ),
        ];
        for (text, line, msg) in cases {
            let e = parse("/tmp/t.conf", text).unwrap_err();
            assert_eq!(e.line, Some(line), "{text:?}: {e}");
            let shown = e.to_string();
            assert!(
                shown.starts_with(&format!("/tmp/t.conf:{line}: ")),
                "{shown}"
            );
            assert!(shown.contains(msg), "{text:?}: {shown}");
        }
    }

    #[test]
    fn empty_and_comment_only() {
        assert!(parse("f", "").unwrap().sections.is_empty());
        assert!(parse("f", "# x\n   \n\t# y\n").unwrap().sections.is_empty());
    }
}
