//! `tunbox run SECTION`, `tunbox config check` and `tunbox config show`: exit status 0,
//! 2 for a configuration error, or the started tool's.
//!
//! TUNBOX_* variables apply to one thing: the section `tunbox run SECTION` starts (and
//! `config show SECTION`, which shows what that run would use), or the tool started
//! from the command line. `config check` and `config show` of the whole file apply them
//! to no section (they only check their values), and say so.
use super::{tunbox_env, AppError, ToolOptions};
use crate::cli;
use crate::config::uci::{Section, UciFile};
use crate::config::{self, schema, ConfigError, Resolved};
use crate::probe::ProbeOptions;
use crate::reflect::{self, ReflectOptions};

/// Checks a resolved section the way starting it would, without starting it: every
/// error found.
pub fn check_resolved(r: &Resolved) -> Vec<ConfigError> {
    let res = match r.spec.kind {
        "reflect" => ReflectOptions::from_resolved(r).map(drop),
        "tunnel" => super::tunnel::check_resolved(r),
        "peer" => super::tunnel::check_peer(r),
        "probe" => ProbeOptions::from_resolved(r).map(drop),
        _ => Ok(()),
    };
    res.err().map(ConfigError::into_all).unwrap_or_default()
}

/// Starts the tool a resolved section names.
pub fn run_resolved(r: &Resolved) -> Result<(), AppError> {
    match r.spec.kind {
        "reflect" => Ok(reflect::run(&ReflectOptions::from_resolved(r)?)?),
        "tunnel" => super::tunnel::run_resolved(r),
        "peer" => Err(r
            .error("a peer section is read by the tunnel it names: run that tunnel section")
            .into()),
        "probe" => super::probe::run(&ProbeOptions::from_resolved(r)?),
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

/// Resolves one section of the file against `env` and checks it: the merged section
/// (`None` for an unknown section type) and every error in it.
fn check_section(
    path: &str,
    s: &Section,
    env: &[(String, String)],
) -> (Option<Resolved>, Vec<ConfigError>) {
    let Some(spec) = schema::section_type(&s.kind) else {
        let e = ConfigError::at(
            path,
            s.line,
            format!(
                "unknown section type '{}' of section '{}' (expected reflect, tunnel, bridge or probe)",
                s.kind,
                s.label()
            ),
        );
        return (None, vec![e]);
    };
    let (r, mut errors) = config::resolve_all(spec, Some((path, s)), env, &[]);
    errors.extend(check_resolved(&r));
    (Some(r), errors)
}

/// Loads the file going on after errors; its warnings are logged.
fn load_all(path: &str) -> Result<(UciFile, Vec<ConfigError>), AppError> {
    let (file, errors) = config::load_all(path)?;
    for w in &file.warnings {
        log::warn!("{w}");
    }
    Ok((file, errors))
}

/// Warns about TUNBOX_* variables that do nothing for a `kind` section.
fn warn_env_not_for(spec: &schema::SectionSpec, env: &[(String, String)], what: &str) {
    for var in config::env_not_for(spec, env) {
        log::warn!(
            "environment {var} is not an option of {} sections; it does nothing for {what}",
            spec.kind
        );
    }
}

/// The TUNBOX_* variables that name options, for the "applies to no section" note.
fn option_vars(env: &[(String, String)]) -> Vec<String> {
    let unknown = config::unknown_env_vars(env);
    schema::SECTION_TYPES
        .iter()
        .flat_map(|spec| config::env_applied(spec, env))
        .filter(|v| !unknown.contains(v))
        .fold(Vec::new(), |mut all, v| {
            if !all.contains(&v) {
                all.push(v);
            }
            all
        })
}

/// `tunbox run SECTION`
pub fn cmd_run(a: &cli::Run) -> Result<(), AppError> {
    let env = tunbox_env();
    let path = config::config_path(&env);
    let file = config::load(&path)?;
    for w in &file.warnings {
        log::warn!("{w}");
    }
    let s = file.lookup(&a.section)?;
    let spec = schema::section_type(&s.kind).ok_or_else(|| {
        ConfigError::at(&path, s.line, format!("unknown section type '{}'", s.kind))
    })?;
    warn_env_not_for(spec, &env, &format!("section '{}'", s.label()));
    let applied = config::env_applied(spec, &env);
    if !applied.is_empty() {
        log::info!(
            "section '{}': environment {} overrides the file",
            s.label(),
            applied.join(", ")
        );
    }
    let r = config::resolve(spec, Some((&path, s)), &env, &[])?;
    if !r.flag("enabled") {
        log::warn!(
            "section '{}' is disabled in {path} (option enabled '0'); running it because it was asked for by name",
            s.label()
        );
    }
    run_resolved(&r)
}

/// `tunbox config check`: every error of the file (parse errors, each section's
/// options and the rules between them) and of the TUNBOX_* variables.
pub fn cmd_check() -> Result<(), AppError> {
    let env = tunbox_env();
    for var in config::unknown_env_vars(&env) {
        log::warn!("environment variable {var} is not a tunbox option; it is ignored");
    }
    let path = config::config_path(&env);
    let (file, mut errors) = load_all(&path)?;
    errors.extend(config::check_env(&env));
    let mut names = Vec::new();
    for s in &file.sections {
        let (r, errs) = check_section(&path, s, &[]);
        if errs.is_empty() {
            if let Some(r) = r {
                let on = if r.flag("enabled") { "" } else { ", disabled" };
                names.push(format!("{} {}{on}", s.kind, s.label()));
            }
        }
        errors.extend(errs);
    }
    // by line (an insertion: a sort would cost the router binary a few KiB)
    let mut sorted: Vec<ConfigError> = Vec::with_capacity(errors.len());
    for e in errors {
        let at = sorted.partition_point(|x| x.line <= e.line);
        sorted.insert(at, e);
    }
    let errors = sorted;
    for e in &errors {
        log::error!("{e}");
    }
    let vars = option_vars(&env);
    if !vars.is_empty() {
        crate::outln!(
            "environment {}: applied to no section (checked as values only); a TUNBOX_ \
             variable applies to the section `tunbox run SECTION` starts, or to a tool \
             started from the command line",
            vars.join(", ")
        );
    }
    if !errors.is_empty() {
        return Err(ConfigError::plain(format!(
            "{path}: {} error(s); nothing was started",
            errors.len()
        ))
        .into());
    }
    crate::outln!(
        "{path}: ok, {} section(s): {}",
        names.len(),
        names.join("; ")
    );
    Ok(())
}

/// `tunbox config show [SECTION]`: the sections as they would run, options with errors
/// marked `# ERROR:` (and listed on stderr, exit status 2). For one section the
/// TUNBOX_* variables apply (it shows what `tunbox run SECTION` would use); for the
/// whole file they apply to none.
pub fn cmd_show(a: &cli::ConfigShow) -> Result<(), AppError> {
    let env = tunbox_env();
    let path = config::config_path(&env);
    let (file, mut errors) = load_all(&path)?;
    let parse_errors = errors.len();
    let show = |s: &Section, env: &[(String, String)], errors: &mut Vec<ConfigError>| {
        let (r, errs) = check_section(&path, s, env);
        match r {
            Some(r) => crate::out!("{}", r.show(&errs)),
            None => crate::out!(
                "{}# ERROR: {}\n",
                file_section_show(&file, s),
                errs.first().map(|e| e.to_string()).unwrap_or_default()
            ),
        }
        errors.extend(errs);
    };
    // the sections to show and the environment they get; one call of `show` (inlined
    // once, not per case: size)
    let (sections, env_applied): (Vec<&Section>, &[(String, String)]) = match &a.section {
        Some(name) => {
            let s = file.lookup(name)?;
            if let Some(spec) = schema::section_type(&s.kind) {
                warn_env_not_for(spec, &env, &format!("section '{}'", s.label()));
            }
            (vec![s], &env)
        }
        None => {
            errors.extend(config::check_env(&env));
            let vars = option_vars(&env);
            if !vars.is_empty() {
                log::warn!(
                    "environment {}: applied to no section here; `config show SECTION` shows a \
                     section with them applied",
                    vars.join(", ")
                );
            }
            (file.sections.iter().collect(), &[])
        }
    };
    for s in sections {
        show(s, env_applied, &mut errors);
    }
    for e in &errors {
        log::error!("{e}");
    }
    if parse_errors > 0 {
        log::error!(
            "{path}: the file has errors; `tunbox run` starts nothing until they are fixed"
        );
    }
    match errors.len() {
        0 => Ok(()),
        n => Err(ConfigError::plain(format!("{path}: {n} error(s)")).into()),
    }
}

/// A section of an unknown type, as `uci show` prints it.
fn file_section_show(file: &UciFile, s: &Section) -> String {
    let one = UciFile {
        path: file.path.clone(),
        sections: vec![s.clone()],
        warnings: Vec::new(),
    };
    one.show("tunbox", false)
}
