//! `tunbox probe`: options, command, exit status (0; 1 / 2 through `AppError`; 130 when
//! interrupted, after the figures so far).
use super::{options, AppError, ToolOptions};
use crate::cli;
use crate::config::schema::{self, SectionSpec};
use crate::config::{ConfigError, Resolved, Source};
use crate::probe::units::{self, Rate};
use crate::probe::{self, Mode, ProbeError, ProbeOptions};

/// Whether an option was given (command line, environment or section), not defaulted.
fn given(r: &Resolved, name: &str) -> bool {
    r.setting(name).is_some_and(|s| s.source != Source::Default)
}

impl ToolOptions for ProbeOptions {
    const SPEC: &'static SectionSpec = &schema::PROBE;

    /// The probe's settings; defaults come from the schema, but those of `rate` and
    /// `size`, which follow the test (see `schema::PROBE`).
    fn from_resolved(r: &Resolved) -> Result<ProbeOptions, ConfigError> {
        let target: String = r.one("target").ok_or_else(|| {
            r.error(
                "no target: give the address a tunbox reflector answers (TARGET, option target)",
            )
        })?;
        let (rfc2544, tcp) = (r.flag("rfc2544"), r.flag("tcp"));
        if rfc2544 && tcp {
            return Err(r.error("--rfc2544 and --tcp are different tests: give one"));
        }
        let mode = match (rfc2544, tcp) {
            (true, _) => Mode::Rfc2544,
            (_, true) => Mode::Tcp,
            _ => Mode::Udp,
        };
        let rate: Option<Rate> = r.one("rate");
        let interval: Option<u64> = r.one("interval");
        if rate.is_some() && interval.is_some() {
            return Err(r.error("give --rate or --interval, not both"));
        }
        let conflict = |names: &[&str], why: &str| match names.iter().find(|n| given(r, n)) {
            Some(n) => Err(r.option_error(n, why)),
            None => Ok(()),
        };
        if mode != Mode::Rfc2544 {
            conflict(
                &["loss_ok", "trial"],
                "--loss-ok and --trial belong to --rfc2544",
            )?;
        } else {
            conflict(
                &["duration"],
                "with --rfc2544 the length of each trial is --trial, not --duration",
            )?;
        }
        if mode != Mode::Udp {
            conflict(&["count"], "--count applies to the plain UDP probe only")?;
            conflict(
                &["every"],
                "--every repeats the plain UDP probe (a link monitor); --rfc2544 and --tcp are one-off tests",
            )?;
        }
        if given(r, "every") && r.flag("json") {
            return Err(r.option_error(
                "json",
                "--json prints the figures of one probe; with --every each run is one line in the log",
            ));
        }
        if mode == Mode::Tcp {
            conflict(
                &["rate", "interval", "size"],
                "--tcp sends as fast as TCP allows: --rate, --interval and --size do not apply",
            )?;
        }
        let rate = match (rate, interval) {
            (Some(r), _) => r,
            (None, Some(ns)) => Rate::Mpps((1_000_000_000_000 / ns).max(1)),
            (None, None) if mode == Mode::Rfc2544 => Rate::Bps(probe::DEFAULT_RFC2544_MAX_BPS),
            (None, None) => Rate::Mpps(probe::DEFAULT_MPPS),
        };
        let mut sizes: Vec<usize> = r.all::<Vec<usize>>("size").concat();
        if sizes.is_empty() {
            sizes = match mode {
                Mode::Rfc2544 => units::RFC2544_FRAMES.to_vec(),
                _ => vec![probe::DEFAULT_SIZE],
            };
        }
        if mode == Mode::Rfc2544 {
            if let Some(f) = sizes
                .iter()
                .find(|&&f| units::udp_payload(units::frame_to_ip(f).unwrap_or(0), false).is_err())
            {
                return Err(r.option_error(
                    "size",
                    format!(
                        "frame size {f} cannot carry a probe: RFC 2544 frame sizes count \
                         the Ethernet header and FCS (18 bytes), the smallest is 64"
                    ),
                ));
            }
        }
        let count = r.one::<u32>("count").map(u64::from);
        // the default duration bounds a run only when no --count does
        let duration_ns = match (given(r, "duration"), count) {
            (false, Some(_)) => None,
            _ => r.one("duration"),
        };
        Ok(ProbeOptions {
            target,
            port: r.one::<u32>("port").unwrap_or_default() as u16,
            mode,
            sizes,
            rate,
            count,
            duration_ns,
            loss_ok: r.one("loss_ok").unwrap_or_default(),
            trial_ns: r.one("trial").unwrap_or_default(),
            json: r.flag("json"),
            every_ns: r.one("every"),
            syslog: r.flag("syslog"),
        })
    }
}

/// Runs the probe from a resolved section or command line (`tunbox run NAME` too).
pub fn run(o: &ProbeOptions) -> Result<(), AppError> {
    match probe::run(o) {
        Ok(false) => Ok(()),
        Ok(true) => Err(AppError::Exit(probe::EXIT_INTERRUPTED)),
        Err(ProbeError::Usage(m)) => Err(ConfigError::plain(m).into()),
        Err(ProbeError::Sys(e)) => Err(e.into()),
    }
}

/// `tunbox probe ...`
pub fn cmd_probe(a: &cli::Probe) -> Result<(), AppError> {
    let o: ProbeOptions = options(a.section.as_deref(), &a.layered())?;
    run(&o)
}

#[cfg(test)]
mod tests {
    use super::super::from_cli;
    use super::*;
    use crate::probe::units::Pct;

    #[test]
    fn defaults_from_the_schema_and_the_test() {
        let o = from_cli::<ProbeOptions>(&[("target", "198.18.0.41")]).unwrap();
        assert_eq!(
            o,
            ProbeOptions {
                target: "198.18.0.41".into(),
                port: 7007,
                mode: Mode::Udp,
                sizes: vec![128],
                rate: Rate::Mpps(100_000),
                count: None,
                duration_ns: Some(10_000_000_000),
                loss_ok: Pct(0),
                trial_ns: 2_000_000_000,
                json: false,
                every_ns: None,
                syslog: false,
            }
        );
        let o = from_cli::<ProbeOptions>(&[("target", "t"), ("rfc2544", "1")]).unwrap();
        assert_eq!(o.mode, Mode::Rfc2544);
        assert_eq!(o.sizes, units::RFC2544_FRAMES);
        assert_eq!(o.rate, Rate::Bps(1_000_000_000));
        let o = from_cli::<ProbeOptions>(&[
            ("target", "t"),
            ("count", "5"),
            ("interval", "10ms"),
            ("every", "5m"),
            ("size", "64,1500"),
        ])
        .unwrap();
        assert_eq!((o.count, o.duration_ns), (Some(5), None));
        assert_eq!(o.rate, Rate::Mpps(100_000));
        assert_eq!(o.every_ns, Some(300_000_000_000));
        assert_eq!(o.sizes, [64, 1500]);
    }

    #[test]
    fn bad_values_and_combinations() {
        let err =
            |cli: &[(&'static str, &str)]| from_cli::<ProbeOptions>(cli).unwrap_err().to_string();
        assert!(err(&[]).contains("no target"));
        assert_eq!(
            err(&[("target", "t"), ("rate", "fast")]),
            "--rate: bad rate 'fast': give packets/s (1000, 10kpps) or bits/s with a unit (64k, 100M, 1G, 500bit)"
        );
        assert!(err(&[("target", "t"), ("port", "0")]).starts_with("--port: '0' is not a port"));
        assert!(err(&[("target", "t"), ("every", "soon")]).starts_with("--every: bad duration"));
        assert!(err(&[("target", "t"), ("loss_ok", "101")]).contains("between 0 and 100"));
        assert!(err(&[("target", "t"), ("size", "43")]).contains("below the smallest IPv4"));
        assert!(err(&[("target", "t"), ("rate", "1"), ("interval", "1")]).contains("not both"));
        assert!(err(&[("target", "t"), ("tcp", "1"), ("every", "60")]).starts_with("--every: "));
        assert!(
            err(&[("target", "t"), ("rfc2544", "1"), ("size", "60")]).contains("smallest is 64")
        );
        assert!(err(&[("target", "t"), ("trial", "5")]).contains("belong to --rfc2544"));
        assert!(err(&[("target", "t"), ("every", "1m"), ("json", "1")]).starts_with("--json: "));
    }
}
