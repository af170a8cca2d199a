//! `tunbox bridge up/down/status`, `tunbox mktun`, `tunbox rmtun`: options, commands,
//! exit status: 0 done (status: consistent), 1 a failure, 2 bad configuration, 3
//! (status only) half up or changed since `up`.
use super::{options, resolve_cmd, AppError, ToolOptions, EXIT_INCOMPLETE};
use crate::bridge::{self, BridgeError, Expect, Health, Settings};
use crate::cli;
use crate::config::schema::{self, SectionSpec};
use crate::config::{ConfigError, Resolved, Source};

impl From<BridgeError> for AppError {
    fn from(e: BridgeError) -> Self {
        AppError::Failed(e.0)
    }
}

impl ToolOptions for Settings {
    const SPEC: &'static SectionSpec = &schema::BRIDGE;

    /// Settings from the merged configuration (command line > TUNBOX_* > UCI
    /// `config bridge` section > the schema's defaults).
    fn from_resolved(r: &Resolved) -> Result<Settings, ConfigError> {
        let bridge: String = r.one("bridge").unwrap_or_default();
        Ok(Settings {
            ifname: r.one("ifname").unwrap_or_default(),
            tap: r.one("tap").unwrap_or_default(),
            // no default in the schema: it follows the bridge's name
            state_file: r
                .one("state_file")
                .unwrap_or_else(|| bridge::default_state_file(&bridge)),
            bridge,
            user: r.one("user"),
        })
    }
}

/// A value given on the command line. Values from the UCI section or the environment
/// are not checked against the record: a section edited after `up` (or a stray
/// TUNBOX_TAP) must not keep `down` (systemd's ExecStop, the init script) from
/// restoring what the record says was done.
fn given(r: &Resolved, name: &str) -> Option<String> {
    r.setting(name)
        .filter(|s| s.source == Source::Cli)
        .and_then(|_| r.one(name))
}

/// `tunbox bridge up`
pub fn cmd_up(a: &cli::BridgeUp) -> Result<(), AppError> {
    let s: Settings = options(a.section.as_deref(), &a.layered())?;
    Ok(bridge::up(&s, a.dry_run)?)
}

/// `tunbox bridge down`: `--ifname`, `--tap` and `--bridge`, when given on the command
/// line, must match what the state file records.
pub fn cmd_down(a: &cli::BridgeDown) -> Result<(), AppError> {
    let r = resolve_cmd(&schema::BRIDGE, a.section.as_deref(), &a.layered())?;
    let expect = Expect {
        ifname: given(&r, "ifname"),
        tap: given(&r, "tap"),
        bridge: given(&r, "bridge"),
    };
    let s = Settings::from_resolved(&r)?;
    Ok(bridge::down(&s.state_file, &expect, a.dry_run)?)
}

/// `tunbox bridge status`
pub fn cmd_status(a: &cli::BridgeStatus) -> Result<(), AppError> {
    let s: Settings = options(a.section.as_deref(), &a.layered())?;
    match bridge::status(&s.bridge, &s.state_file)? {
        Health::Consistent => Ok(()),
        Health::Incomplete => Err(AppError::Exit(EXIT_INCOMPLETE)),
    }
}

/// `tunbox mktun`
pub fn cmd_mktun(m: &cli::Mktun) -> Result<(), AppError> {
    let name = bridge::mktun(&m.dev, m.mode, m.user.as_deref(), m.group.as_deref())?;
    crate::outln!(
        "{name}: persistent {} device{}{}",
        m.mode.as_str(),
        m.user
            .as_deref()
            .map_or(String::new(), |u| format!(", owner {u}")),
        m.group
            .as_deref()
            .map_or(String::new(), |g| format!(", group {g}"))
    );
    Ok(())
}

/// `tunbox rmtun`
pub fn cmd_rmtun(r: &cli::Rmtun) -> Result<(), AppError> {
    bridge::rmtun(&r.dev, r.mode)?;
    crate::outln!("{}: removed", r.dev);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::from_cli;
    use super::*;

    #[test]
    fn defaults_come_from_the_schema() {
        let s: Settings = from_cli(&[]).unwrap();
        assert_eq!(
            (s.ifname.as_str(), s.tap.as_str(), s.bridge.as_str()),
            ("eth0", "tap0", "br-tunbox")
        );
        assert_eq!(s.state_file, "/var/run/tunbox/bridge-br-tunbox.state");
        assert!(s.user.is_none());
        let s: Settings = from_cli(&[("bridge", "br0"), ("user", "u")]).unwrap();
        assert_eq!(s.state_file, "/var/run/tunbox/bridge-br0.state");
        assert_eq!(s.user.as_deref(), Some("u"));
    }

    #[test]
    fn only_given_names_are_checked_against_the_record() {
        let cli = vec![("tap", vec!["tap9".to_string()])];
        let env = [("TUNBOX_IFNAME".to_string(), "eth7".to_string())];
        let r = crate::config::resolve(&schema::BRIDGE, None, &env, &cli).unwrap();
        assert_eq!(given(&r, "tap").as_deref(), Some("tap9"));
        assert_eq!(
            given(&r, "ifname"),
            None,
            "only the command line is checked"
        );
        assert_eq!(given(&r, "bridge"), None, "a default is not a given name");
    }
}
