//! `tunbox reflect`: options, command, exit status (0, or 1 / 2 through `AppError`).
use super::{options, AppError, ToolOptions};
use crate::cli;
use crate::config::schema::{self, SectionSpec};
use crate::config::{ConfigError, Resolved};
use crate::reflect::{self, ReflectOptions};
use crate::sys::tun::Mode;

impl ToolOptions for ReflectOptions {
    const SPEC: &'static SectionSpec = &schema::REFLECT;

    /// The reflector's settings; defaults come from the schema.
    fn from_resolved(r: &Resolved) -> Result<ReflectOptions, ConfigError> {
        let mode: Mode = r.one("mode").unwrap_or_default();
        // every error is collected (`config check` lists them all)
        let mut errors = Vec::new();
        let (mut ranges, mut mac) = (Vec::new(), None);
        if mode == Mode::Tun {
            for tap_only in ["range", "mac", "icmp_echo"] {
                let set = match tap_only {
                    "icmp_echo" => r.flag(tap_only),
                    _ => r.setting(tap_only).is_some(),
                };
                if set {
                    errors.extend(r.rule_error(
                        &[tap_only, "mode"],
                        format_args!("'{tap_only}' only applies to mode tap"),
                    ));
                }
            }
        } else {
            ranges = r.all("range");
            if ranges.is_empty() {
                errors.extend(r.rule_error(
                    &["range", "mode"],
                    format_args!(
                        "mode tap needs at least one 'range' to answer for, \
                     e.g. --range 198.18.0.0/15 --range 2001:2::/48"
                    ),
                ));
            }
            mac = r.one("mac");
        }
        ConfigError::join(errors)?;
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
            queues: r.one::<u32>("queues").map(|n| n as usize),
        })
    }
}

/// `tunbox reflect ...`
pub fn cmd_reflect(a: &cli::Reflect) -> Result<(), AppError> {
    let o: ReflectOptions = options(a.section.as_deref(), &a.layered())?;
    Ok(reflect::run(&o)?)
}

#[cfg(test)]
mod tests {
    use super::super::from_cli;
    use super::*;
    use crate::wire::cidr::Cidr;

    #[test]
    fn typed_options_and_defaults() {
        let o =
            from_cli::<ReflectOptions>(&[("address", "198.18.0.1/15"), ("mtu", "1400")]).unwrap();
        assert_eq!((o.dev.as_str(), o.mode), ("tun0", Mode::Tun));
        assert_eq!(o.addresses, [("198.18.0.1".parse().unwrap(), 15)]);
        assert_eq!(o.mtu, Some(1400));
        assert!(!o.verbose && !o.syslog && !o.icmp_echo && o.user.is_none());
        let o = from_cli::<ReflectOptions>(&[
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
        let e = from_cli::<ReflectOptions>(&[("range", "198.18.0.0/15")]).unwrap_err();
        assert!(e.msg.contains("'range' only applies to mode tap"), "{e}");
        let e = from_cli::<ReflectOptions>(&[("icmp_echo", "1")]).unwrap_err();
        assert!(e.msg.contains("'icmp_echo' only applies"), "{e}");
        let e = from_cli::<ReflectOptions>(&[("mode", "tap")]).unwrap_err();
        assert!(e.msg.contains("at least one 'range'"), "{e}");
        let e = from_cli::<ReflectOptions>(&[("mtu", "20")]).unwrap_err();
        assert_eq!(
            e.to_string(),
            "--mtu: '20' is not a whole number from 68 to 65535"
        );
    }
}
