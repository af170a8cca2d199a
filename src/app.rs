//! Glue between the command line, the layered configuration and the tools.
use crate::cli;
use crate::config::{self, schema, ConfigError, Resolved};
use crate::reflect::{self, ReflectOptions};
use crate::sys::{tun::Mode, SysError};
use crate::wire::{cidr::Cidr, ethernet::MacAddr};
use std::fmt;
use std::process::ExitCode;

/// An error that ends the command: bad configuration (exit 2) or a failure at run
/// time (exit 1).
#[derive(Debug)]
pub enum AppError {
    Config(ConfigError),
    Sys(SysError),
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Config(e) => e.fmt(f),
            AppError::Sys(e) => e.fmt(f),
        }
    }
}

impl From<ConfigError> for AppError {
    fn from(e: ConfigError) -> Self {
        AppError::Config(e)
    }
}

impl From<SysError> for AppError {
    fn from(e: SysError) -> Self {
        AppError::Sys(e)
    }
}

/// Prints the error and maps it to the exit status.
pub fn exit_with(res: Result<(), AppError>) -> ExitCode {
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            crate::error!("{e}");
            match e {
                AppError::Config(_) => ExitCode::from(2),
                AppError::Sys(_) => ExitCode::from(1),
            }
        }
    }
}

/// The process environment's TUNBOX_* variables.
pub fn tunbox_env() -> Vec<(String, String)> {
    std::env::vars()
        .filter(|(k, _)| k.starts_with("TUNBOX_"))
        .collect()
}

/// Collects command-line options as (name, values) for the merge.
#[derive(Default)]
pub struct CliOpts(pub Vec<(&'static str, Vec<String>)>);

impl CliOpts {
    pub fn opt(mut self, name: &'static str, v: &Option<String>) -> Self {
        if let Some(v) = v {
            self.0.push((name, vec![v.clone()]));
        }
        self
    }
    pub fn list(mut self, name: &'static str, v: &[String]) -> Self {
        if !v.is_empty() {
            self.0.push((name, v.to_vec()));
        }
        self
    }
    pub fn switch(mut self, name: &'static str, on: bool) -> Self {
        if on {
            self.0.push((name, vec!["1".to_string()]));
        }
        self
    }
}

/// Resolves the options of a subcommand: the command line, the environment, the named
/// UCI section (if any) and the defaults.
pub fn resolve_cmd(
    spec: &'static schema::SectionSpec,
    section: Option<&str>,
    cli: &CliOpts,
) -> Result<Resolved, AppError> {
    let env = tunbox_env();
    match section {
        None => Ok(config::resolve(spec, None, &env, &cli.0)?),
        Some(name) => {
            let path = config::config_path(&env);
            let file = config::load(&path)?;
            let s = file
                .section(name)
                .ok_or_else(|| ConfigError::plain(format!("{path}: no section named '{name}'")))?;
            Ok(config::resolve(spec, Some((&file.path, s)), &env, &cli.0)?)
        }
    }
}

impl ReflectOptions {
    /// Builds the reflector's settings from merged configuration.
    pub fn from_resolved(r: &Resolved) -> Result<ReflectOptions, ConfigError> {
        let mode = r.parse("mode", Mode::parse)?.unwrap_or_default();
        let dev = r
            .get("dev")
            .map(str::to_string)
            .unwrap_or_else(|| format!("{}0", mode.as_str()));
        let mtu = r.parse("mtu", |v| v.parse::<u32>().map_err(|e| e.to_string()))?;
        let (mut ranges, mut mac) = (Vec::new(), None);
        if mode == Mode::Tun {
            for tap_only in ["range", "mac"] {
                if r.setting(tap_only).is_some() {
                    return Err(r.error(format!("'{tap_only}' only applies to mode tap")));
                }
            }
            if r.flag("icmp_echo") {
                return Err(r.error("'icmp_echo' only applies to mode tap"));
            }
        } else {
            ranges = r.parse_list("range", |v| v.parse::<Cidr>().map_err(|e| e.to_string()))?;
            if ranges.is_empty() {
                return Err(r.error(
                    "mode tap needs at least one 'range' to answer for, \
                     e.g. --range 198.18.0.0/15 --range 2001:2::/48",
                ));
            }
            mac = r.parse("mac", |v| v.parse::<MacAddr>().map_err(|e| e.to_string()))?;
        }
        Ok(ReflectOptions {
            dev,
            mode,
            addresses: r.parse_list("address", schema::parse_cidr)?,
            mtu,
            user: r.get("user").map(str::to_string),
            verbose: r.flag("verbose"),
            syslog: r.flag("syslog"),
            ranges,
            mac,
            icmp_echo: r.flag("icmp_echo"),
        })
    }
}

pub fn reflect_cli(a: &cli::Reflect) -> CliOpts {
    CliOpts::default()
        .opt("dev", &a.dev)
        .opt("mode", &a.mode)
        .list("address", &a.address)
        .opt("mtu", &a.mtu)
        .list("range", &a.range)
        .opt("mac", &a.mac)
        .switch("icmp_echo", a.icmp_echo)
        .opt("user", &a.user)
        .switch("verbose", a.verbose)
        .switch("syslog", a.syslog)
}

/// `tunbox reflect ...`
pub fn cmd_reflect(a: &cli::Reflect) -> Result<(), AppError> {
    let r = resolve_cmd(&schema::REFLECT, a.section.as_deref(), &reflect_cli(a))?;
    let o = ReflectOptions::from_resolved(&r)?;
    Ok(reflect::run(&o)?)
}

/// Checks a resolved section the way starting it would, without starting it.
pub fn check_resolved(r: &Resolved) -> Result<(), ConfigError> {
    match r.spec.kind {
        "reflect" => ReflectOptions::from_resolved(r).map(drop),
        "tunnel" => crate::tunnel_run::check_resolved(r),
        _ => Ok(()),
    }
}

/// Starts the tool a resolved section names.
pub fn run_resolved(r: &Resolved) -> Result<(), AppError> {
    match r.spec.kind {
        "reflect" => Ok(reflect::run(&ReflectOptions::from_resolved(r)?)?),
        "tunnel" => Ok(crate::tunnel_run::run(
            &crate::tunnel_run::TunnelOptions::from_resolved(r)?,
        )?),
        "bridge" => Err(r
            .error(format!(
                "bridge sections are not run as a service: use `tunbox bridge up --section {}`",
                r.section.as_deref().unwrap_or("NAME")
            ))
            .into()),
        other => Err(r
            .error(format!(
                "'{other}' sections cannot be run by this build yet"
            ))
            .into()),
    }
}

/// Loads the file and resolves every section (each against the environment). Returns
/// the path, the resolved sections and every error found, one per section at most.
fn resolve_file() -> Result<(String, Vec<Resolved>, Vec<ConfigError>), AppError> {
    let env = tunbox_env();
    let path = config::config_path(&env);
    let file = config::load(&path)?;
    let mut ok = Vec::new();
    let mut errors = Vec::new();
    for s in &file.sections {
        let Some(spec) = schema::section_type(&s.kind) else {
            errors.push(ConfigError::at(
                &path,
                s.line,
                format!(
                    "unknown section type '{}' (expected reflect, tunnel or bridge)",
                    s.kind
                ),
            ));
            continue;
        };
        match config::resolve(spec, Some((&path, s)), &env, &[]) {
            Ok(r) => match check_resolved(&r) {
                Ok(()) => ok.push(r),
                Err(e) => errors.push(e),
            },
            Err(e) => errors.push(e),
        }
    }
    Ok((path, ok, errors))
}

/// `tunbox run SECTION`
pub fn cmd_run(a: &cli::Run) -> Result<(), AppError> {
    let env = tunbox_env();
    let path = config::config_path(&env);
    let file = config::load(&path)?;
    let s = file
        .section(&a.section)
        .ok_or_else(|| ConfigError::plain(format!("{path}: no section named '{}'", a.section)))?;
    let spec = schema::section_type(&s.kind).ok_or_else(|| {
        ConfigError::at(&path, s.line, format!("unknown section type '{}'", s.kind))
    })?;
    let r = config::resolve(spec, Some((&path, s)), &env, &[])?;
    if !r.flag("enabled") {
        crate::warn!(
            "section '{}' is disabled in {path} (option enabled '0'); running it because it was asked for by name",
            a.section
        );
    }
    run_resolved(&r)
}

/// `tunbox config check`
pub fn cmd_config_check() -> Result<(), AppError> {
    let env = tunbox_env();
    for var in config::unknown_env_vars(&env) {
        crate::warn!("environment variable {var} is not a tunbox option; it is ignored");
    }
    let (path, ok, errors) = resolve_file()?;
    for e in &errors {
        crate::error!("{e}");
    }
    if !errors.is_empty() {
        return Err(ConfigError::plain(format!(
            "{path}: {} error(s); nothing was started",
            errors.len()
        ))
        .into());
    }
    let names: Vec<String> = ok
        .iter()
        .map(|r| {
            let on = if r.flag("enabled") { "" } else { ", disabled" };
            format!(
                "{} {}{on}",
                r.spec.kind,
                r.section.as_deref().unwrap_or("?")
            )
        })
        .collect();
    crate::outln!("{path}: ok, {} section(s): {}", ok.len(), names.join("; "));
    Ok(())
}

/// `tunbox config show [SECTION]`
pub fn cmd_config_show(a: &cli::ConfigShow) -> Result<(), AppError> {
    let (path, ok, errors) = resolve_file()?;
    if let Some(name) = &a.section {
        if let Some(e) = errors.into_iter().next() {
            return Err(e.into());
        }
        let r = ok
            .iter()
            .find(|r| r.section.as_deref() == Some(name))
            .ok_or_else(|| ConfigError::plain(format!("{path}: no section named '{name}'")))?;
        crate::out!("{}", r.show());
        return Ok(());
    }
    for r in &ok {
        crate::out!("{}", r.show());
    }
    match errors.into_iter().next() {
        Some(e) => Err(e.into()),
        None => Ok(()),
    }
}
