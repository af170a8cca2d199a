//! Configuration: defaults < UCI file < TUNBOX_* environment < command line, merged
//! into plain values that remember where each came from (for `config show` and for
//! error messages that name file and line). Pure: the caller reads the file and the
//! environment and hands them in.
pub mod schema;
pub mod uci;

use schema::{OptSpec, SectionSpec};
use std::fmt;

/// The UCI file read when TUNBOX_CONFIG is not set.
pub const DEFAULT_PATH: &str = "/etc/config/tunbox";

/// A configuration error, located as precisely as its source allows.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ConfigError {
    pub file: Option<String>,
    pub line: Option<usize>,
    pub msg: String,
    /// More errors found in the same pass (printed after this one, one per line).
    pub also: Vec<ConfigError>,
}

impl ConfigError {
    pub fn at(file: &str, line: usize, msg: impl Into<String>) -> Self {
        ConfigError {
            file: Some(file.to_string()),
            line: Some(line),
            msg: msg.into(),
            also: Vec::new(),
        }
    }
    pub fn plain(msg: impl Into<String>) -> Self {
        ConfigError {
            file: None,
            line: None,
            msg: msg.into(),
            also: Vec::new(),
        }
    }

    /// All of `errors` as one error (the first, the others in `also`); `Ok` when none.
    pub fn join(errors: Vec<ConfigError>) -> Result<(), ConfigError> {
        let mut all = Vec::new();
        for e in errors {
            e.flatten_into(&mut all);
        }
        if all.is_empty() {
            return Ok(());
        }
        let mut first = all.remove(0);
        first.also = all;
        Err(first)
    }

    /// This error and the ones joined to it, each on its own.
    pub fn into_all(self) -> Vec<ConfigError> {
        let mut v = Vec::new();
        self.flatten_into(&mut v);
        v
    }

    /// Appends this error and the ones joined to it, in order (plain recursion rather
    /// than nested `flat_map`s: size).
    fn flatten_into(mut self, out: &mut Vec<ConfigError>) {
        let also = std::mem::take(&mut self.also);
        out.push(self);
        for e in also {
            e.flatten_into(out);
        }
    }
}

impl fmt::Display for ConfigError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match (&self.file, self.line) {
            (Some(file), Some(line)) => write!(f, "{file}:{line}: {}", self.msg),
            (Some(file), None) => write!(f, "{file}: {}", self.msg),
            _ => f.write_str(&self.msg),
        }?;
        for e in &self.also {
            write!(f, "\n{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigError {}

/// Where a value came from.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Source {
    Default,
    Uci { file: String, line: usize },
    Env(String),
    Cli,
}

impl Source {
    /// Locates an error about this value: `FILE:LINE: option 'x' ...`,
    /// `environment TUNBOX_X: ...`, `--x: ...`.
    #[inline]
    pub fn error(&self, opt: &str, msg: impl fmt::Display) -> ConfigError {
        self.error_dyn(opt, &msg)
    }
    /// The body of [`Source::error`], once for every message type (size).
    #[inline(never)]
    fn error_dyn(&self, opt: &str, msg: &dyn fmt::Display) -> ConfigError {
        match self {
            Source::Uci { file, line } => {
                ConfigError::at(file, *line, format!("option '{opt}': {msg}"))
            }
            Source::Env(var) => ConfigError::plain(format!("environment {var}: {msg}")),
            Source::Cli => ConfigError::plain(format!("--{}: {msg}", opt.replace('_', "-"))),
            Source::Default => ConfigError::plain(format!("default of '{opt}': {msg}")),
        }
    }
}

/// One option's merged value(s).
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Setting {
    pub spec: &'static OptSpec,
    /// The values as written (for `config show`).
    pub values: Vec<String>,
    /// The same values parsed by the option's kind, once, at merge time.
    pub parsed: Vec<schema::Value>,
    pub source: Source,
}

/// A section (or a command line) with every layer merged.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Resolved {
    pub spec: &'static SectionSpec,
    /// The UCI section name, when a section was used.
    pub section: Option<String>,
    /// Location of the `config` line, for errors about the section as a whole.
    pub origin: Option<(String, usize)>,
    pub settings: Vec<Setting>,
    /// Options not in `settings` because of an error (unknown, or a bad value).
    pub broken: Vec<Broken>,
}

/// The environment variable for an option: TUNBOX_ + upper case, `-` as `_`.
pub fn env_name(opt: &str) -> String {
    format!("TUNBOX_{}", opt.to_ascii_uppercase().replace('-', "_"))
}

/// Variables that are not options: the config path, and the build and test scripts'
/// own settings (prefixes).
const ENV_NOT_OPTIONS: &[&str] = &[
    "TUNBOX_CONFIG",
    // The bridge step hooks exist only with the `test-hooks` feature; elsewhere they
    // are unknown variables like any other.
    #[cfg(feature = "test-hooks")]
    "TUNBOX_TEST_",
    "TUNBOX_CROSS_",
    "TUNBOX_ALL_TARGETS",
    "TUNBOX_SKIP_NETNS",
    "TUNBOX_BUILD_STD_FEATURES",
    "TUNBOX_RELEASE_RUSTFLAGS",
    "TUNBOX_SRC_DIR",
];

/// TUNBOX_* variables that name no option of any section type (to warn about typos).
pub fn unknown_env_vars(env: &[(String, String)]) -> Vec<String> {
    let mut vars = Vec::new();
    for (k, _) in env {
        if option_like(k) && !schema::SECTION_TYPES.iter().any(|s| sets_option_of(s, k)) {
            vars.push(k.clone());
        }
    }
    vars
}

/// A TUNBOX_* variable meant as an option: not the config path or a build or test
/// script's setting. (This and [`sets_option_of`] are shared by the environment checks,
/// written as plain loops: smaller than their iterator chains.)
#[inline(never)]
fn option_like(k: &str) -> bool {
    k.starts_with("TUNBOX_") && !ENV_NOT_OPTIONS.iter().any(|p| k.starts_with(p))
}

/// Whether `var` is the environment variable of an option of `spec`.
#[inline(never)]
fn sets_option_of(spec: &SectionSpec, var: &str) -> bool {
    spec.options.iter().any(|o| env_name(o.name) == var)
}

/// The values an environment variable gives an option: a list split at spaces or
/// commas, else the one value.
fn env_values(os: &OptSpec, v: &str) -> Vec<String> {
    if os.list {
        split_env_list(v)
    } else {
        vec![v.to_string()]
    }
}

/// Splits a list value given in one environment variable: spaces or commas.
fn split_env_list(v: &str) -> Vec<String> {
    let mut items = Vec::new();
    for s in v.split(|c: char| c == ',' || c.is_whitespace()) {
        if !s.is_empty() {
            items.push(s.to_string());
        }
    }
    items
}

/// Merges the layers for one section type. `section` is the UCI section to read (its
/// type must match), `env` the process environment, `cli` the options given on the
/// command line as (name, values). Every value is checked against the schema; the
/// first error ends it (all of them are in the error, see [`ConfigError::join`]).
pub fn resolve(
    spec: &'static SectionSpec,
    file: Option<(&str, &uci::Section)>,
    env: &[(String, String)],
    cli: &[(&'static str, Vec<String>)],
) -> Result<Resolved, ConfigError> {
    let (r, errors) = resolve_all(spec, file, env, cli);
    ConfigError::join(errors)?;
    Ok(r)
}

/// Like [`resolve`], but goes on after an error: an option whose value is wrong (or
/// that the section type does not have) is left out of `settings` and kept in
/// `broken`, and every error is returned.
pub fn resolve_all(
    spec: &'static SectionSpec,
    file: Option<(&str, &uci::Section)>,
    env: &[(String, String)],
    cli: &[(&'static str, Vec<String>)],
) -> (Resolved, Vec<ConfigError>) {
    let mut errors = Vec::new();
    let mut r = Resolved {
        spec,
        section: None,
        origin: None,
        settings: Vec::new(),
        broken: Vec::new(),
    };
    if let Some((path, s)) = file {
        r.origin = Some((path.to_string(), s.line));
        r.section = Some(s.name.clone());
        if s.kind != spec.kind {
            errors.push(ConfigError::at(
                path,
                s.line,
                format!(
                    "section '{}' is a '{}' section, not '{}'",
                    s.label(),
                    s.kind,
                    spec.kind
                ),
            ));
            return (r, errors);
        }
        for o in &s.options {
            let msg = match spec.option(&o.name) {
                None => format!(
                    "unknown option '{}' in section '{}' (config {}); known options: {}",
                    o.name,
                    s.label(),
                    spec.kind,
                    spec.option_names()
                ),
                Some(os) if o.is_list && !os.list => {
                    format!("'{}' takes one value: use `option`, not `list`", o.name)
                }
                Some(_) => continue,
            };
            let e = ConfigError::at(path, o.line, msg);
            r.broken.push(Broken {
                name: o.name.clone(),
                values: o.values.clone(),
                error: e.to_string(),
            });
            errors.push(e);
        }
    }
    for os in spec.options {
        if r.broken.iter().any(|b| b.name == os.name) {
            continue;
        }
        let mut chosen: Option<(Vec<String>, Source)> =
            os.default.map(|d| (vec![d.to_string()], Source::Default));
        if let Some((path, s)) = file {
            if let Some(o) = s.option(os.name) {
                chosen = Some((
                    o.values.clone(),
                    Source::Uci {
                        file: path.to_string(),
                        line: o.line,
                    },
                ));
            }
        }
        let var = env_name(os.name);
        if let Some((_, v)) = env.iter().find(|(k, _)| *k == var) {
            let values = env_values(os, v);
            chosen = Some((values, Source::Env(var)));
        }
        if let Some((_, v)) = cli.iter().find(|(k, _)| *k == os.name) {
            if !v.is_empty() {
                chosen = Some((v.clone(), Source::Cli));
            }
        }
        let Some((values, source)) = chosen else {
            continue;
        };
        // a plain loop rather than collecting into a Result (smaller)
        let mut parsed = Vec::with_capacity(values.len());
        let mut error = None;
        for v in &values {
            match os.kind.parse(v) {
                Ok(p) => parsed.push(p),
                Err(m) => {
                    error = Some(source.error(os.name, m));
                    break;
                }
            }
        }
        match error {
            None => r.settings.push(Setting {
                spec: os,
                values,
                parsed,
                source,
            }),
            Some(e) => {
                r.broken.push(Broken {
                    name: os.name.to_string(),
                    values,
                    error: e.to_string(),
                });
                errors.push(e);
            }
        }
    }
    (r, errors)
}

/// Checks TUNBOX_* variables that name options against every section type that has
/// the option (for `config check`, which applies them to no section).
pub fn check_env(env: &[(String, String)]) -> Vec<ConfigError> {
    let mut errors: Vec<ConfigError> = Vec::new();
    for (k, v) in env {
        for spec in schema::SECTION_TYPES {
            let Some(os) = spec.options.iter().find(|o| env_name(o.name) == *k) else {
                continue;
            };
            let values = env_values(os, v);
            let source = Source::Env(k.clone());
            for v in &values {
                if let Err(m) = os.kind.parse(v) {
                    let e = source.error(os.name, m);
                    if !errors.contains(&e) {
                        errors.push(e);
                    }
                }
            }
        }
    }
    errors
}

/// The TUNBOX_* variables that set an option of `spec` (in `env`'s order).
pub fn env_applied(spec: &SectionSpec, env: &[(String, String)]) -> Vec<String> {
    let mut vars = Vec::new();
    for (k, _) in env {
        if sets_option_of(spec, k) {
            vars.push(k.clone());
        }
    }
    vars
}

/// TUNBOX_* variables that name an option of another section type but not of `spec`:
/// they do nothing for this tool.
pub fn env_not_for(spec: &SectionSpec, env: &[(String, String)]) -> Vec<String> {
    let unknown = unknown_env_vars(env);
    let mut vars = Vec::new();
    for (k, _) in env {
        if option_like(k) && !unknown.contains(k) && !sets_option_of(spec, k) {
            vars.push(k.clone());
        }
    }
    vars
}

/// An option left out of a [`Resolved`] because of an error, kept to show it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Broken {
    pub name: String,
    pub values: Vec<String>,
    /// The error, as printed.
    pub error: String,
}

impl Resolved {
    pub fn setting(&self, name: &str) -> Option<&Setting> {
        self.settings.iter().find(|s| s.spec.name == name)
    }

    /// The single value of an option in its typed form, if set (or defaulted); `None`
    /// too when `T` is not the option's kind (a bug the unit tests catch).
    pub fn one<T: schema::FromValue>(&self, name: &str) -> Option<T> {
        self.last_value(name).and_then(T::from_value)
    }

    /// The lookup part of [`Resolved::one`], once for every `T` (size).
    #[inline(never)]
    fn last_value(&self, name: &str) -> Option<&schema::Value> {
        debug_assert!(self.spec.option(name).is_some(), "no option {name}");
        self.setting(name).and_then(|s| s.parsed.last())
    }

    /// Every value of a list option in its typed form (empty when unset).
    pub fn all<T: schema::FromValue>(&self, name: &str) -> Vec<T> {
        debug_assert!(self.spec.option(name).is_some(), "no option {name}");
        let mut all = Vec::new();
        for v in self.setting(name).map_or(&[][..], |s| &s.parsed) {
            all.extend(T::from_value(v));
        }
        all
    }

    /// A boolean option; unset counts as false.
    pub fn flag(&self, name: &str) -> bool {
        self.one::<bool>(name).unwrap_or(false)
    }

    /// An error about one option's value, located where the value came from.
    pub fn option_error(&self, name: &str, msg: impl fmt::Display) -> ConfigError {
        match self.setting(name) {
            Some(s) => s.source.error(name, msg),
            None => self.error(msg.to_string()),
        }
    }

    /// An error from a rule between options (`opts`, the one that the rule is about
    /// first), located where one of them that is set came from: its command-line
    /// option, else its environment variable (named), else its line in the file; at the
    /// `config` line when none is set. `None` when one of them has a bad value: that error is
    /// already reported, and the rule cannot be judged.
    pub fn rule_error(&self, opts: &[&str], msg: fmt::Arguments<'_>) -> Option<ConfigError> {
        if opts
            .iter()
            .any(|o| self.broken.iter().any(|b| b.name == *o))
        {
            return None;
        }
        // an override is what changed the outcome: a command-line option first, then a
        // variable, then the file, in the order of `opts`
        let rank = |s: &Source| match s {
            Source::Cli => 0,
            Source::Env(_) => 1,
            Source::Uci { .. } => 2,
            Source::Default => 3,
        };
        let set = opts
            .iter()
            .filter_map(|o| self.setting(o).map(|s| (o, &s.source)))
            .filter(|(_, s)| **s != Source::Default)
            .min_by_key(|(_, s)| rank(s));
        Some(match set {
            Some((_, Source::Uci { file, line })) => ConfigError::at(
                file,
                *line,
                format!(
                    "section '{}': {msg}",
                    self.section.as_deref().unwrap_or("?")
                ),
            ),
            Some((o, src)) => src.error(o, msg),
            None => self.error(msg.to_string()),
        })
    }

    /// An error about the section as a whole (e.g. an option that is missing),
    /// located at the `config` line or, without a file, plain.
    pub fn error(&self, msg: impl Into<String>) -> ConfigError {
        match &self.origin {
            Some((file, line)) => ConfigError::at(
                file,
                *line,
                format!(
                    "section '{}': {}",
                    self.section.as_deref().unwrap_or("?"),
                    msg.into()
                ),
            ),
            None => ConfigError::plain(msg),
        }
    }

    /// Lines in the `uci show` form, values from env or defaults marked:
    /// `tunbox.lab.dev='tun0'  # from environment TUNBOX_DEV`; an option with an error
    /// is shown as written with the error after it (`# ERROR: ...`), and `errors`
    /// about the section follow as `# ERROR:` lines.
    pub fn show(&self, errors: &[ConfigError]) -> String {
        let name = self.section.as_deref().unwrap_or("cli");
        let quote = uci::shell_quote_list;
        let mut out = format!("tunbox.{name}={}\n", self.spec.kind);
        let broken = |b: &Broken| {
            format!(
                "tunbox.{name}.{}={}  # ERROR: {}\n",
                b.name,
                quote(&b.values),
                b.error
            )
        };
        // in the schema's order, a bad value where the option belongs; options the
        // section type does not have last
        for os in self.spec.options {
            if let Some(s) = self.setting(os.name) {
                let mark = match &s.source {
                    Source::Default => "  # default".to_string(),
                    Source::Env(var) => format!("  # from environment {var}"),
                    Source::Cli => "  # from command line".to_string(),
                    Source::Uci { .. } => String::new(),
                };
                out.push_str(&format!(
                    "tunbox.{name}.{}={}{mark}\n",
                    s.spec.name,
                    quote(&s.values)
                ));
            }
            for b in self.broken.iter().filter(|b| b.name == os.name) {
                out.push_str(&broken(b));
            }
        }
        for b in &self.broken {
            if self.spec.option(&b.name).is_none() {
                out.push_str(&broken(b));
            }
        }
        for e in errors {
            let text = e.to_string();
            if !self.broken.iter().any(|b| b.error == text) {
                out.push_str(&format!("# ERROR: {text}\n"));
            }
        }
        out
    }
}

/// Where the UCI file is: $TUNBOX_CONFIG or /etc/config/tunbox.
pub fn config_path(env: &[(String, String)]) -> String {
    env.iter()
        .find(|(k, _)| k == "TUNBOX_CONFIG")
        .map(|(_, v)| v.clone())
        .unwrap_or_else(|| DEFAULT_PATH.to_string())
}

/// Reads the UCI file's bytes (not `read_to_string`: uci takes any bytes, and the
/// parser says which line holds a byte that is not UTF-8, see [`uci`]).
pub fn read(path: &str) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|e| {
        ConfigError::plain(format!(
            "cannot read config file {path}: {e} (set TUNBOX_CONFIG to use another file)"
        ))
    })
}

/// Reads and parses the UCI file to act on it (`run`, `--section`); the first error
/// ends it. As root, a file another user could have written is refused: its sections
/// would decide which devices, addresses and routes a privileged tunbox sets up.
pub fn load(path: &str) -> Result<uci::UciFile, ConfigError> {
    if crate::sys::trust::running_as_root() {
        let file = std::fs::File::open(path).map_err(|e| {
            ConfigError::plain(format!(
                "cannot read config file {path}: {e} (set TUNBOX_CONFIG to use another file)"
            ))
        })?;
        crate::sys::trust::check_file(&file, &format!("config file {path}"))
            .map_err(|e| ConfigError::plain(e.msg))?;
    }
    uci::parse(path, read(path)?)
}

/// Reads and parses the UCI file, going on after errors: the sections read, warnings
/// included, and every parse error.
pub fn load_all(path: &str) -> Result<(uci::UciFile, Vec<ConfigError>), ConfigError> {
    Ok(uci::parse_all(path, read(path)?))
}

#[cfg(test)]
mod tests;
