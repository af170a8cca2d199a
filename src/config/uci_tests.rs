use super::*;
use std::path::{Path, PathBuf};

fn corpus_dir() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("src/config/testdata/uci")
}

/// `# KEY: value` lines of a case file's header.
fn header<'a>(text: &'a str, key: &str) -> Vec<&'a str> {
    text.lines()
        .filter_map(|l| l.strip_prefix("# ")?.strip_prefix(key)?.strip_prefix(": "))
        .map(str::trim)
        .collect()
}

/// One case file per syntax rule, with what the real `uci` printed for it (see
/// testdata/uci/regen.sh): `uci show` and `uci -X show`, or uci's error.
#[test]
fn corpus_matches_real_uci() {
    let mut cases: Vec<PathBuf> = std::fs::read_dir(corpus_dir())
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "uci"))
        .collect();
    cases.sort();
    assert!(cases.len() >= 50, "corpus has only {} cases", cases.len());
    let (mut accepted, mut refused) = (0, 0);
    for case in &cases {
        let name = case.file_stem().unwrap().to_string_lossy();
        let text = std::fs::read_to_string(case).unwrap();
        assert_eq!(header(&text, "rule").len(), 1, "{name}: no '# rule:' line");
        let expect = |ext: &str| std::fs::read_to_string(case.with_extension(ext)).ok();
        let got = parse("t", &text);
        let warnings = header(&text, "tunbox-warning");
        match (expect("err"), expect("show"), expect("showx")) {
            (Some(err), None, None) => {
                refused += 1;
                let e = got.expect_err(&format!("{name}: uci refuses it ({err})"));
                let uci_line: usize = err
                    .split("at line ")
                    .nth(1)
                    .and_then(|r| r.split(',').next())
                    .and_then(|n| n.parse().ok())
                    .unwrap_or_else(|| panic!("{name}: no line in {err}"));
                let line = match header(&text, "tunbox-error-line").first() {
                    Some(l) => l.parse().unwrap(),
                    None => uci_line,
                };
                assert_eq!(e.line, Some(line), "{name}: {e} (uci: {err})");
                assert!(e.to_string().starts_with(&format!("t:{line}: ")), "{e}");
            }
            (None, Some(show), Some(showx)) => {
                accepted += 1;
                let f = got.unwrap_or_else(|e| panic!("{name}: uci accepts it, we said {e}"));
                assert_eq!(f.show("t", true), show, "{name}: uci show");
                assert_eq!(f.show("t", false), showx, "{name}: uci -X show");
                // Every name uci shows finds its section.
                for s in &f.sections {
                    for n in [s.name.clone(), s.shown_name()] {
                        let found = f.section(&n).unwrap_or_else(|| panic!("{name}: {n}"));
                        assert!(std::ptr::eq(found, s), "{name}: {n} finds another section");
                    }
                }
                let shown: Vec<String> = f.warnings.iter().map(|w| w.to_string()).collect();
                assert_eq!(shown.len(), warnings.len(), "{name}: warnings {shown:?}");
                for w in &warnings {
                    assert!(shown.iter().any(|s| s.contains(w)), "{name}: {shown:?}");
                }
            }
            other => panic!("{name}: expected CASE.err or CASE.show + CASE.showx, have {other:?}"),
        }
    }
    assert!(accepted >= 30 && refused >= 15, "{accepted} {refused}");
}

/// Section references resolved by the real uci (testdata/uci/lookup.*): a name, or
/// uci's "Entry not found" / "Invalid argument".
#[test]
fn lookup_matches_real_uci() {
    let dir = corpus_dir();
    let text = std::fs::read_to_string(dir.join("lookup.conf")).unwrap();
    let f = parse("t", &text).unwrap();
    let expected = std::fs::read_to_string(dir.join("lookup.expected")).unwrap();
    let mut n = 0;
    for line in expected.lines() {
        let (r, want) = line.split_once('\t').unwrap();
        let got = f.section(r).map(|s| s.name.as_str());
        match want {
            "Entry not found" | "Invalid argument" => assert_eq!(got, None, "{r}"),
            name => assert_eq!(got, Some(name), "{r}"),
        }
        n += 1;
    }
    assert!(n >= 25, "{n}");
}

#[test]
fn anonymous_names_by_hand() {
    // DJB hash, seed 5381, h = h * 33 + byte:
    // "a": 5381 * 33 + 97 = 177670 = 0x2b606 -> low 16 bits b606
    assert_eq!(anonymous_name(1, "a"), "cfg01b606");
    // "T": 5381 * 33 + 84 = 177657 = 0x2b5f9
    assert_eq!(anonymous_name(4, "T"), "cfg04b5f9");
    // "ab": 177670 * 33 + 98 = 5863208 = 0x597728
    assert_eq!(anonymous_name(2, "ab"), "cfg027728");
    // The position is hex, two digits at least, more when needed.
    assert_eq!(anonymous_name(17, "a"), "cfg11b606");
    assert_eq!(anonymous_name(256, "a"), "cfg100b606");
    // Values printed by the real uci (testdata/uci/anonymous_*.showx).
    assert_eq!(anonymous_name(1, "tunnel"), "cfg01d3bb");
    assert_eq!(anonymous_name(5, "bridge"), "cfg05c6b2");
    assert_eq!(anonymous_name(6, "reflect"), "cfg066a0a");
    assert_eq!(anonymous_name(3, "my-type"), "cfg03abda");
    // Long types overflow 32 bits; the arithmetic wraps as in C.
    let long = "x".repeat(40);
    let mut h: u64 = 5381;
    for b in long.bytes() {
        h = (h * 33 + u64::from(b)) & 0xffff_ffff;
    }
    assert_eq!(anonymous_name(1, &long), format!("cfg01{:04x}", h & 0xffff));
}

const SAMPLE: &str = "config tunnel\n\toption remote 'a'\nconfig reflect lab\nconfig tunnel wan\nconfig tunnel\n\toption remote 'b'\nconfig bridge\n";

#[test]
fn lookup_by_name_id_and_index() {
    let f = parse("/etc/config/tunbox", SAMPLE).unwrap();
    let name = |r: &str| f.section(r).map(|s| s.name.as_str());
    assert_eq!(name("lab"), Some("lab"));
    assert_eq!(name("cfg01d3bb"), Some("cfg01d3bb"));
    assert_eq!(name("cfg04d3bb"), Some("cfg04d3bb"));
    assert_eq!(name("@tunnel[0]"), Some("cfg01d3bb"));
    assert_eq!(name("@tunnel[1]"), Some("wan"), "named sections count");
    assert_eq!(name("@tunnel[2]"), Some("cfg04d3bb"));
    assert_eq!(name("@tunnel[-1]"), Some("cfg04d3bb"));
    assert_eq!(name("@tunnel[-3]"), Some("cfg01d3bb"));
    assert_eq!(
        name("@tunnel[]"),
        Some("cfg01d3bb"),
        "uci reads an empty index as 0"
    );
    assert_eq!(name("@tunnel[+1]"), Some("wan"));
    assert_eq!(
        name("@tunnel[ 1]"),
        Some("wan"),
        "strtol skips leading blanks"
    );
    assert_eq!(name("@[1]"), Some("lab"), "@[N] counts every type");
    assert_eq!(name("@[-1]"), Some("cfg05c6b2"));
    assert_eq!(name("@reflect[0]"), Some("lab"));
    for missing in [
        "@tunnel[3]",
        "@tunnel[-4]",
        "@tunnel[1x]",
        "@tunnel[1]x",
        "@tunnel[-]",
        "@tunnel[1 ]",
        "@tunnel[ ]",
        "@tunnel",
        "tunnel[0]",
        "@tun nel[0]",
        "@frob[0]",
        "nope",
        "cfg01d3bc",
        "",
        "my-tun",
    ] {
        assert_eq!(name(missing), None, "{missing}");
    }
    let e = f.lookup("nope").unwrap_err().to_string();
    assert!(
        e.starts_with("/etc/config/tunbox: no section 'nope'; it has: "),
        "{e}"
    );
    assert!(e.contains("cfg01d3bb (@tunnel[0]) (tunnel)"), "{e}");
    assert!(e.contains("lab (reflect)"), "{e}");
    let e = f.lookup("my-tun").unwrap_err().to_string();
    assert!(e.contains("its cfg… id or as @TYPE[N]"), "{e}");
    let s = f.lookup("@tunnel[-1]").unwrap();
    assert_eq!(s.label(), "cfg04d3bb (@tunnel[2])");
    assert_eq!(f.section("wan").unwrap().label(), "wan");
}

#[test]
fn sections_options_lists_and_lines() {
    let text = "\n# tunbox example\npackage tunbox\n\nconfig reflect 'lab'\n\toption dev 'tun0'\n\toption enabled 1   # trailing comment\n\tlist address '198.18.0.1/15'\n\tlist address \"2001:2::1/48\"\n\nconfig tunnel wan\n\toption dev tbx0\n\toption dev tbx1\n\toption mode 'tun'\n\tlist mode 'tap'\n";
    let f = parse("/etc/config/tunbox", text).unwrap();
    let lab = f.section("lab").unwrap();
    assert_eq!(
        (lab.kind.as_str(), lab.line, lab.anonymous),
        ("reflect", 5, false)
    );
    assert_eq!(lab.option("enabled").unwrap().values, ["1"]);
    let addr = lab.option("address").unwrap();
    assert!(addr.is_list);
    assert_eq!(addr.values, ["198.18.0.1/15", "2001:2::1/48"]);
    assert_eq!(addr.line, 8, "a list keeps the line of its first item");
    assert_eq!(addr.lines, [8, 9]);
    let wan = f.section("wan").unwrap();
    let dev = wan.option("dev").unwrap();
    assert_eq!(
        (dev.values.as_slice(), dev.line),
        (&["tbx1".to_string()][..], 13)
    );
    let mode = wan.option("mode").unwrap();
    assert!(mode.is_list);
    assert_eq!(mode.values, ["tun", "tap"]);
    assert_eq!((mode.line, &mode.lines[..]), (14, &[14, 15][..]));
    assert!(f.warnings.is_empty());
}

#[test]
fn errors_name_file_line_and_fix() {
    let cases = [
        ("option a b\n", 1, "'option' before any 'config' line"),
        ("config tunnel x\n\toption a 'b\n", 2, "unterminated single quote"),
        ("config tunnel x\n\toption a \"b\n", 2, "unterminated double quote"),
        // the quote left open on line 2 pairs with the next line's: the statement of
        // line 2 runs on, and the quote that reaches the end opened on line 3
        ("config tunnel x\n\toption a 'b\n\toption c 'd'\n", 2, "unterminated single quote: the value of the statement on this line runs to the end of the file (its quotes pair up across lines 2-3"),
        ("config tunnel x\nfrobnicate a b\n", 2, "unknown keyword 'frobnicate'"),
        ("config tunnel x\noption\n", 2, "expected: option NAME 'VALUE'"),
        ("config tunnel x\noption a b c\n", 2, "too many arguments ('c' is one too many): expected: option NAME"),
        ("config\n", 1, "expected: config TYPE"),
        ("config \n", 1, "expected: config TYPE"),
        ("config tunnel x y\n", 1, "expected: config TYPE ['NAME']"),
        ("config tunnel 'a b'\n", 1, "'a b' is not a valid section name: uci allows only letters, digits and _ (rename it to 'a_b')"),
        ("config tunnel my-tun\n", 1, "rename it to 'my_tun'"),
        ("config tunnel x\nconfig reflect x\n", 2, "section 'x' is already a 'tunnel' section (line 1)"),
        ("config tunnel x\noption 'a.b' 1\n", 2, "'a.b' is not a valid option name: uci allows only letters, digits and _ (rename it to 'a_b')"),
        ("config 'tun nel' x\n", 1, "'tun nel' is not a valid section type"),
        ("config tunnel x\n\toption a 'b';\n", 2, "nothing follows the ';'"),
        ("package 'a.b'\n", 1, "not a valid package name"),
        ("config tunnel x\n\toption a 'b\0'\n", 2, "NUL byte"),
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
fn parse_all_reports_every_error_and_keeps_the_rest() {
    let text = "config tunnel a\n\toption x 1\nconfig tunnel my-b\n\toption y-z 2\n\toption w 3\nconfig tunnel c\n\toption v 'unterminated\n";
    let (f, errors) = parse_all("f", text);
    let lines: Vec<Option<usize>> = errors.iter().map(|e| e.line).collect();
    assert_eq!(lines, [Some(3), Some(4), Some(7)], "{errors:?}");
    assert!(errors[0].msg.contains("rename it to 'my_b'"));
    // As with `uci -S` (what config_load uses), the bad section's options land in the
    // section before it: the reason uci's name rules are errors here.
    let a = f.section("a").unwrap();
    assert_eq!(a.option("w").unwrap().values, ["3"]);
    assert!(f.section("c").is_some());
    // parse stops at the first one.
    assert_eq!(parse("f", text).unwrap_err().line, Some(3));
    let (f, errors) = parse_all("f", "config tunnel ok\n\toption a b\n");
    assert!(errors.is_empty());
    assert_eq!(f.sections.len(), 1);
}

#[test]
fn warnings_for_lines_uci_ignores() {
    let f = parse(
        "f",
        "config tunnel x\n\toption a\n\toption b c\n\toption b ''\nconfig tunnel y; option d e\nconfig tunnel z;# fine\n\toption f g; # fine\n",
    )
    .unwrap();
    let w: Vec<String> = f.warnings.iter().map(|w| w.to_string()).collect();
    assert_eq!(w.len(), 3, "{w:?}");
    assert!(
        w[0].starts_with("f:2: option 'a' has no value: uci ignores this line"),
        "{w:?}"
    );
    assert!(
        w[1].starts_with("f:4: option 'b' has no value")
            && w[1].contains("the value set before stays"),
        "{w:?}"
    );
    assert!(
        w[2].starts_with("f:5: uci ignores 'option d e' after the ';'"),
        "{w:?}"
    );
    assert_eq!(f.section("x").unwrap().option("b").unwrap().values, ["c"]);
    assert!(f.section("y").unwrap().options.is_empty());
}

#[test]
fn empty_and_comment_only() {
    assert!(parse("f", "").unwrap().sections.is_empty());
    assert!(parse("f", "# x\n   \n\t# y\n").unwrap().sections.is_empty());
    assert!(parse("f", "\r\n\x0c\n").unwrap().sections.is_empty());
}

#[test]
fn name_rules() {
    for ok in ["a", "A_1", "1st", "_"] {
        assert!(valid_name(ok), "{ok}");
    }
    for bad in ["", "my-tun", "a.b", "a b", "ä", "a@b"] {
        assert!(!valid_name(bad), "{bad}");
    }
    for ok in ["tunnel", "my-type", "a.b:c", "@x[0]"] {
        assert!(valid_type(ok), "{ok}");
    }
    for bad in ["", "a b", "tün", "a\tb"] {
        assert!(!valid_type(bad), "{bad}");
    }
    assert_eq!(suggest_name("my-tun.1"), "my_tun_1");
    assert_eq!(suggest_name("wän"), "w_n");
}

/// A small deterministic generator (xorshift) of UCI-like texts built from the
/// pieces that matter to the parser.
struct Gen(u64);

impl Gen {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }
    fn pick<'a>(&mut self, from: &[&'a str]) -> &'a str {
        from[(self.next() % from.len() as u64) as usize]
    }
    /// Mostly well-formed statements with tricky words, so that most texts parse.
    fn statements(&mut self) -> String {
        const KW: &[&str] = &[
            "config", "option", "list", "option", "list", "c", "o", "l", "package", "#",
        ];
        const WORD: &[&str] = &[
            "tunnel",
            "reflect",
            "x",
            "y",
            "my-x",
            "'q v'",
            "\"d\\\"q\"",
            "a\\ b",
            "''",
            "\"\"",
            "ab",
            "1",
            "cfg01d3bb",
            "cfg02d3bb",
            "'m\nl'",
            "\"m\\\nl\"",
            "a'b'c",
            "é",
            "a#b",
            "'a;b'",
            "x;",
            "'x';",
            "T",
            "@x[0]",
            "",
        ];
        const SEP: &[&str] = &[" ", " ", "\t", "  ", " ; ", ";"];
        const END: &[&str] = &["\n", "\n", "\n", "\r\n", " # c\n", ";\n", " \\\n", "\n\n"];
        let mut out = String::from(self.pick(&["config tunnel s\n", "config reflect\n", ""]));
        for _ in 0..self.next() % 6 {
            let kw = self.pick(KW);
            out.push_str(kw);
            let args = [0, 1, 2, 2, 2, 2, 3][(self.next() % 7) as usize];
            for _ in 0..args {
                let sep = self.pick(SEP);
                out.push_str(sep);
                let w = self.pick(WORD);
                out.push_str(w);
            }
            let end = self.pick(END);
            out.push_str(end);
        }
        out
    }

    fn text(&mut self) -> String {
        const PIECES: &[&str] = &[
            "config",
            "option",
            "list",
            "package",
            "c",
            "o",
            "l",
            "p",
            "tunnel",
            "reflect",
            "x",
            "y",
            "my-x",
            "a.b",
            "'",
            "\"",
            "'q v'",
            "\"d\\\"q\"",
            "\\",
            "\\\n",
            ";",
            " ; ",
            "#",
            " # c",
            " ",
            " ",
            " ",
            "\t",
            "\n",
            "\n",
            "\n",
            "\r\n",
            "''",
            "ab",
            "1",
            "cfg01d3bb",
            "é",
            "\x0b",
        ];
        let n = self.next() % 40;
        (0..n).map(|_| self.pick(PIECES)).collect()
    }
}

#[test]
fn random_texts_never_panic() {
    let mut g = Gen(0x9e37_79b9_7f4a_7c15);
    for _ in 0..20_000 {
        let text = if g.next() % 2 == 0 {
            g.text()
        } else {
            g.statements()
        };
        let strict = parse("f", &text);
        let (all, errors) = parse_all("f", &text);
        match strict {
            Ok(f) => {
                assert!(errors.is_empty(), "{text:?}");
                for o in f.sections.iter().flat_map(|s| &s.options) {
                    assert_eq!(o.values.len(), o.lines.len(), "{text:?}");
                    assert!(o.is_list || o.values.len() == 1, "{text:?}");
                }
                assert_eq!(f, all, "{text:?}");
            }
            Err(e) => assert_eq!(errors.first(), Some(&e), "{text:?}"),
        }
    }
}

/// Differential check against a real uci binary on generated texts:
/// `UCI_ORACLE=/path/to/uci cargo test --lib config::uci -- --ignored differential`
/// (`UCI_ORACLE_CASES`: how many texts, default 3000; `UCI_ORACLE_SEED`: another set)
/// (see testdata/uci/regen.sh for building one).
#[test]
#[ignore = "needs a uci binary in UCI_ORACLE"]
fn differential_against_real_uci() {
    let uci = std::env::var("UCI_ORACLE").expect("UCI_ORACLE=/path/to/uci");
    let dir = std::env::temp_dir().join(format!("tbx-uci-diff-{}", std::process::id()));
    std::fs::create_dir_all(dir.join("conf")).unwrap();
    let n: usize = std::env::var("UCI_ORACLE_CASES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(3000);
    let seed = std::env::var("UCI_ORACLE_SEED")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(0x2545_f491_4f6c_dd1d_u64);
    let mut g = Gen(seed | 1);
    let (mut same_ok, mut same_err, mut other_line) = (0, 0, 0);
    for i in 0..n {
        let text = if i % 4 == 0 { g.text() } else { g.statements() };
        std::fs::write(dir.join("conf/t"), &text).unwrap();
        let out = std::process::Command::new(&uci)
            .arg("-c")
            .arg(dir.join("conf"))
            .arg("-t")
            .arg(dir.join("delta"))
            .args(["-X", "show", "t"])
            .output()
            .unwrap();
        let theirs = String::from_utf8_lossy(&out.stdout);
        match parse("t", &text) {
            Ok(f) => {
                assert!(
                    out.status.success(),
                    "uci refused, we accepted: {text:?}: {}",
                    String::from_utf8_lossy(&out.stderr)
                );
                assert_eq!(f.show("t", false), theirs, "{text:?}");
                same_ok += 1;
            }
            Err(e) => {
                // uci reports "not found" for a file without a single statement line
                // that errs; any failure counts as a refusal.
                assert!(
                    !out.status.success(),
                    "we refused ({e}), uci accepted: {text:?}: {theirs}"
                );
                same_err += 1;
                let err = String::from_utf8_lossy(&out.stderr);
                let uci_line: Option<usize> = err
                    .split("at line ")
                    .nth(1)
                    .and_then(|r| r.split(',').next())
                    .and_then(|n| n.parse().ok());
                // uci does not count a last line that has no newline, and reports an
                // unterminated quote at the end of the file, not where it opened.
                let ours = match e.line {
                    Some(l) if l == text.lines().count() && !text.ends_with('\n') => Some(l - 1),
                    l => l,
                };
                if uci_line.is_some() && uci_line != ours && !e.msg.contains("unterminated") {
                    other_line += 1;
                    if other_line <= 8 {
                        eprintln!("error line differs: {text:?}: we {e}; uci {err}");
                    }
                }
            }
        }
    }
    let _ = std::fs::remove_dir_all(&dir);
    eprintln!("differential: {same_ok} accepted alike, {same_err} refused alike ({other_line} with another error line)");
    assert_eq!(other_line, 0, "error lines differ from uci's");
}
