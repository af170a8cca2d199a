//! `tunbox run SECTION`, `tunbox config check` and `tunbox config show`: exit status 0,
//! 2 for a configuration error, or the started tool's.
use super::{tunbox_env, AppError, ToolOptions};
use crate::cli;
use crate::config::{self, schema, ConfigError, Resolved};
use crate::reflect::{self, ReflectOptions};

/// Checks a resolved section the way starting it would, without starting it.
pub fn check_resolved(r: &Resolved) -> Result<(), ConfigError> {
    match r.spec.kind {
        "reflect" => ReflectOptions::from_resolved(r).map(drop),
        "tunnel" => super::tunnel::check_resolved(r),
        "peer" => super::tunnel::check_peer(r),
        _ => Ok(()),
    }
}

/// Starts the tool a resolved section names.
pub fn run_resolved(r: &Resolved) -> Result<(), AppError> {
    match r.spec.kind {
        "reflect" => Ok(reflect::run(&ReflectOptions::from_resolved(r)?)?),
        "tunnel" => super::tunnel::run_resolved(r),
        "peer" => Err(r
            .error("a peer section is read by the tunnel it names: run that tunnel section")
            .into()),
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
        log::warn!(
            "section '{}' is disabled in {path} (option enabled '0'); running it because it was asked for by name",
            a.section
        );
    }
    run_resolved(&r)
}

/// `tunbox config check`
pub fn cmd_check() -> Result<(), AppError> {
    let env = tunbox_env();
    for var in config::unknown_env_vars(&env) {
        log::warn!("environment variable {var} is not a tunbox option; it is ignored");
    }
    let (path, ok, errors) = resolve_file()?;
    for e in &errors {
        log::error!("{e}");
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
pub fn cmd_show(a: &cli::ConfigShow) -> Result<(), AppError> {
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
