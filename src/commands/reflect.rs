//! `tunbox reflect`: options, command, exit status (0, or 1 / 2 through `AppError`).
use super::{resolve_cmd, AppError};
use crate::cli;
use crate::config::{schema, ConfigError, Resolved};
use crate::reflect::{self, ReflectOptions};
use crate::sys::tun::Mode;

impl ReflectOptions {
    /// Builds the reflector's settings from merged configuration, with the checks that
    /// need more than one option. Defaults come from the schema.
    pub fn from_resolved(r: &Resolved) -> Result<ReflectOptions, ConfigError> {
        let mode: Mode = r.one("mode").unwrap_or_default();
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
            ranges = r.all("range");
            if ranges.is_empty() {
                return Err(r.error(
                    "mode tap needs at least one 'range' to answer for, \
                     e.g. --range 198.18.0.0/15 --range 2001:2::/48",
                ));
            }
            mac = r.one("mac");
        }
        Ok(ReflectOptions {
            // no default in the schema: it follows the mode
            dev: r
                .one("dev")
                .unwrap_or_else(|| format!("{}0", mode.as_str())),
            mode,
            addresses: r.all("address"),
            mtu: r.one("mtu"),
            user: r.one("user"),
            verbose: r.flag("verbose"),
            syslog: r.flag("syslog"),
            ranges,
            mac,
            icmp_echo: r.flag("icmp_echo"),
        })
    }
}

/// `tunbox reflect ...`
pub fn cmd_reflect(a: &cli::Reflect) -> Result<(), AppError> {
    let r = resolve_cmd(&schema::REFLECT, a.section.as_deref(), &a.layered())?;
    let o = ReflectOptions::from_resolved(&r)?;
    Ok(reflect::run(&o)?)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config;
    use crate::wire::cidr::Cidr;

    fn resolve(cli: &[(&'static str, &str)]) -> Result<ReflectOptions, ConfigError> {
        let cli: Vec<(&'static str, Vec<String>)> =
            cli.iter().map(|(k, v)| (*k, vec![v.to_string()])).collect();
        let r = config::resolve(&schema::REFLECT, None, &[], &cli)?;
        ReflectOptions::from_resolved(&r)
    }

    #[test]
    fn typed_options_and_defaults() {
        let o = resolve(&[("address", "198.18.0.1/15"), ("mtu", "1400")]).unwrap();
        assert_eq!((o.dev.as_str(), o.mode), ("tun0", Mode::Tun));
        assert_eq!(o.addresses, [("198.18.0.1".parse().unwrap(), 15)]);
        assert_eq!(o.mtu, Some(1400));
        assert!(!o.verbose && !o.syslog && !o.icmp_echo && o.user.is_none());
        let o = resolve(&[
            ("mode", "tap"),
            ("range", "198.18.0.0/15"),
            ("mac", "02:00:00:00:00:01"),
            ("icmp_echo", "1"),
            ("user", "nobody"),
        ])
        .unwrap();
        assert_eq!((o.dev.as_str(), o.mode), ("tap0", Mode::Tap));
        assert_eq!(o.ranges, ["198.18.0.0/15".parse::<Cidr>().unwrap()]);
        assert_eq!(o.mac, Some("02:00:00:00:00:01".parse().unwrap()));
        assert!(o.icmp_echo);
        assert_eq!(o.user.as_deref(), Some("nobody"));
    }

    #[test]
    fn tap_only_options_and_missing_range() {
        let e = resolve(&[("range", "198.18.0.0/15")]).unwrap_err();
        assert!(e.msg.contains("'range' only applies to mode tap"), "{e}");
        let e = resolve(&[("icmp_echo", "1")]).unwrap_err();
        assert!(e.msg.contains("'icmp_echo' only applies"), "{e}");
        let e = resolve(&[("mode", "tap")]).unwrap_err();
        assert!(e.msg.contains("at least one 'range'"), "{e}");
        let e = resolve(&[("mtu", "20")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--mtu: '20' is not a whole number from 68 to 65535"
        );
    }
}
