//! The glue between the command line and the tools, one file per tool, each in the same
//! shape: the tool's typed options built from the merged configuration
//! (`from_resolved`), its command function(s) taking the argh struct, and the exit
//! status through [`AppError`]. The tools themselves ([`crate::reflect`],
//! [`crate::tunnel_run`], [`crate::bridge`]) know nothing of the command line or the
//! configuration layers.
pub mod bridge;
pub mod config;
pub mod probe;
pub mod reflect;
pub mod status;
pub mod tunnel;

use crate::cli::{self, CliOpts, Cmd};
use crate::config::{self as conf, schema, ConfigError, Resolved};
use crate::sys::SysError;
use std::fmt;
use std::process::ExitCode;

/// Exit status of a failure at run time.
pub const EXIT_FAILURE: u8 = 1;
/// Exit status of a usage or configuration error: nothing was started.
pub const EXIT_USAGE: u8 = 2;
/// Exit status of `bridge status` when the bridge is half up or changed since `up`.
pub const EXIT_INCOMPLETE: u8 = 3;

/// An error that ends the command: bad configuration (exit 2), a failure at run time
/// (exit 1), or a status already reported.
#[derive(Debug)]
pub enum AppError {
    Config(ConfigError),
    Sys(SysError),
    /// A failure described by its message (exit 1).
    Failed(String),
    /// Nothing more to say; exit with this status.
    Exit(u8),
}

impl AppError {
    pub fn exit_status(&self) -> u8 {
        match self {
            AppError::Config(_) => EXIT_USAGE,
            AppError::Sys(_) | AppError::Failed(_) => EXIT_FAILURE,
            AppError::Exit(code) => *code,
        }
    }
}

impl fmt::Display for AppError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            AppError::Config(e) => e.fmt(f),
            AppError::Sys(e) => e.fmt(f),
            AppError::Failed(m) => f.write_str(m),
            AppError::Exit(_) => Ok(()),
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

/// Prints the error (if it has something to say) and maps it to the exit status.
pub fn exit_with(res: Result<(), AppError>) -> ExitCode {
    match res {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            if !matches!(e, AppError::Exit(_)) {
                log::error!("{e}");
            }
            ExitCode::from(e.exit_status())
        }
    }
}

/// Whether a command acts on the network or on devices (needs CAP_NET_ADMIN), as
/// opposed to one that only reads, writes a key or measures through plain sockets.
fn needs_privileges(cmd: &Cmd) -> bool {
    match cmd {
        Cmd::Reflect(_)
        | Cmd::Tunnel(_)
        | Cmd::Bridge(_)
        | Cmd::Mktun(_)
        | Cmd::Rmtun(_)
        | Cmd::Run(_)
        | Cmd::Selftest(_) => true,
        Cmd::Genkey(_) | Cmd::Config(_) | Cmd::Probe(_) | Cmd::Status(_) => false,
    }
}

/// A tunbox raised by file capabilities (or a setuid bit) for a user who is not root
/// would let that user steer it: refuse the privileged commands, and run the others
/// with every capability dropped first.
fn refuse_raised_privileges(cmd: &Cmd) -> Result<(), AppError> {
    let Some(uid) = crate::sys::trust::raised_for_non_root() else {
        return Ok(());
    };
    if needs_privileges(cmd) {
        return Err(AppError::Failed(format!(
            "refusing to run for uid {uid} with privileges from file capabilities (or a \
             setuid bit): they would let any local user steer tunbox's state and \
             configuration files. Remove them (`setcap -r $(command -v tunbox)`) and start \
             tunbox as root (procd, systemd with AmbientCapabilities=CAP_NET_ADMIN, or \
             sudo), with --user to run as an account afterwards"
        )));
    }
    Ok(crate::sys::caps::drop_privileges(None)?)
}

/// Runs a parsed command. By reference: matching the enum by value moved each
/// command's struct out of it first (a copy per arm, about 1 KB on mipsel in all).
pub fn run(cmd: &Cmd) -> ExitCode {
    if let Err(e) = refuse_raised_privileges(cmd) {
        return exit_with(Err(e));
    }
    exit_with(match cmd {
        Cmd::Reflect(a) => reflect::cmd_reflect(a),
        Cmd::Tunnel(a) => tunnel::cmd_tunnel(a),
        Cmd::Genkey(a) => tunnel::cmd_genkey(a),
        Cmd::Bridge(b) => match &b.action {
            cli::BridgeAction::Up(a) => bridge::cmd_up(a),
            cli::BridgeAction::Down(a) => bridge::cmd_down(a),
            cli::BridgeAction::Status(a) => bridge::cmd_status(a),
        },
        Cmd::Mktun(a) => bridge::cmd_mktun(a),
        Cmd::Rmtun(a) => bridge::cmd_rmtun(a),
        Cmd::Run(a) => config::cmd_run(a),
        Cmd::Config(c) => match &c.action {
            cli::ConfigAction::Check(_) => config::cmd_check(),
            cli::ConfigAction::Show(a) => config::cmd_show(a),
        },
        Cmd::Selftest(_) => return crate::selftest::main(),
        Cmd::Probe(a) => probe::cmd_probe(a),
        Cmd::Status(a) => status::cmd_status(a),
    })
}

/// A tool's typed options, built from a merged section: the same shape for every tool.
pub trait ToolOptions: Sized {
    /// The section type (and subcommand) the options come from.
    const SPEC: &'static schema::SectionSpec;
    /// Reads the typed values (parsed once by the schema at merge time) and checks what
    /// needs more than one option.
    fn from_resolved(r: &Resolved) -> Result<Self, ConfigError>;
}

/// A tool's options from its command line (plus environment, UCI section, defaults).
pub fn options<T: ToolOptions>(section: Option<&str>, cli: &CliOpts) -> Result<T, AppError> {
    Ok(T::from_resolved(&resolve_cmd(T::SPEC, section, cli)?)?)
}

/// The process environment's TUNBOX_* variables. Not `std::env::vars()`, which panics
/// on a variable that is not UTF-8 (anyone's, not only ours); such a TUNBOX_ variable
/// is passed on lossily, so that its check names it.
pub fn tunbox_env() -> Vec<(String, String)> {
    // one non-inlined conversion for names and values (size)
    #[inline(never)]
    fn lossy(s: std::ffi::OsString) -> String {
        s.into_string()
            .unwrap_or_else(|s| s.to_string_lossy().into_owned())
    }
    let mut env = Vec::new();
    for (k, v) in std::env::vars_os() {
        if k.as_encoded_bytes().starts_with(b"TUNBOX_") {
            env.push((lossy(k), lossy(v)));
        }
    }
    env
}

/// Resolves the options of a subcommand: the command line, the environment, the named
/// UCI section (if any) and the defaults. A named section that is disabled is run
/// anyway, with a warning.
pub fn resolve_cmd(
    spec: &'static schema::SectionSpec,
    section: Option<&str>,
    cli: &CliOpts,
) -> Result<Resolved, AppError> {
    let env = tunbox_env();
    let Some(name) = section else {
        for var in conf::env_not_for(spec, &env) {
            log::warn!(
                "environment {var} is not an option of `tunbox {}`; it is ignored",
                spec.kind
            );
        }
        return Ok(conf::resolve(spec, None, &env, &cli.0)?);
    };
    let path = conf::config_path(&env);
    let file = conf::load(&path)?;
    for w in &file.warnings {
        log::warn!("{w}");
    }
    let s = file.lookup(name)?;
    for var in conf::env_not_for(spec, &env) {
        log::warn!(
            "environment {var} is not an option of {} sections; it does nothing for `tunbox {}`",
            spec.kind,
            spec.kind
        );
    }
    let r = conf::resolve(spec, Some((&file.path, s)), &env, &cli.0)?;
    if !r.flag("enabled") {
        log::warn!(
            "section '{name}' is disabled in {path} (option enabled '0'); going ahead because it was named"
        );
    }
    Ok(r)
}

/// Test helper: a tool's options from command-line options given as (name, value).
#[cfg(test)]
pub(crate) fn from_cli<T: ToolOptions>(cli: &[(&'static str, &str)]) -> Result<T, ConfigError> {
    let cli: Vec<(&'static str, Vec<String>)> =
        cli.iter().map(|(k, v)| (*k, vec![v.to_string()])).collect();
    T::from_resolved(&conf::resolve(T::SPEC, None, &[], &cli)?)
}

#[cfg(test)]
mod tests {
    use crate::cli;
    use crate::config::schema::{self, SectionSpec};

    /// Every option of a command's struct (but `section`) is an option of its section
    /// type, so the merge finds it; and every option of the section type can be given
    /// on the command line of the command that starts it.
    #[test]
    fn cli_fields_are_schema_options() {
        let cases: [(&[&str], &SectionSpec, bool); 6] = [
            (cli::Probe::FIELDS, &schema::PROBE, true),
            (cli::Reflect::FIELDS, &schema::REFLECT, true),
            (cli::Tunnel::FIELDS, &schema::TUNNEL, true),
            (cli::BridgeUp::FIELDS, &schema::BRIDGE, true),
            (cli::BridgeDown::FIELDS, &schema::BRIDGE, false),
            (cli::BridgeStatus::FIELDS, &schema::BRIDGE, false),
        ];
        for (fields, spec, complete) in cases {
            for f in fields.iter().filter(|f| **f != "section") {
                // dry_run is a switch of the command, not a setting
                if *f == "dry_run" {
                    continue;
                }
                assert!(spec.option(f).is_some(), "{}: --{f}", spec.kind);
            }
            if complete {
                for o in spec.options.iter().filter(|o| o.name != "enabled") {
                    assert!(fields.contains(&o.name), "{}: {}", spec.kind, o.name);
                }
            }
        }
    }
}
