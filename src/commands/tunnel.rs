//! `tunbox tunnel` and `tunbox genkey`: options, commands, exit status (0, or 1 / 2
//! through `AppError`).
use super::{options, AppError, ToolOptions};
use crate::cli;
use crate::config::schema::{self, SectionSpec};
use crate::config::{ConfigError, Resolved};
use crate::sys::SysError;
use crate::tunnel::key::Key;
use crate::tunnel::{Role, Transport};
use crate::tunnel_run::{self, keyfile, TunnelOptions, MAX_MTU};
use std::path::PathBuf;
use std::time::Duration;

impl ToolOptions for TunnelOptions {
    const SPEC: &'static SectionSpec = &schema::TUNNEL;

    /// The tunnel's settings; defaults come from the schema.
    fn from_resolved(r: &Resolved) -> Result<TunnelOptions, ConfigError> {
        // every error is collected (`config check` lists them all); a rule about an
        // option whose value is bad is skipped (that value's error is in the list)
        let mut errors = Vec::new();
        let listen = r.one("listen");
        let remote = r.one("remote");
        let role = match (&listen, &remote) {
            (Some(_), None) => Role::Server,
            (None, Some(_)) => Role::Client,
            (Some(_), Some(_)) => {
                errors.extend(r.rule_error(
                    &["remote", "listen"],
                    format_args!("give either 'listen' (server) or 'remote' (client), not both"),
                ));
                Role::Client
            }
            (None, None) => {
                errors.extend(r.rule_error(
                    &["listen", "remote"],
                    format_args!(
                        "give 'listen [ADDR:]PORT' (server) or 'remote HOST:PORT' (client)"
                    ),
                ));
                Role::Client
            }
        };
        let plaintext = r.flag("plaintext");
        let key_file = r.one::<String>("key_file").map(PathBuf::from);
        if !plaintext && key_file.is_none() {
            errors.extend(r.rule_error(
                &["key_file", "plaintext"],
                format_args!("no 'key_file': make one with `tunbox genkey /etc/tunbox/key`, copy it to both ends \
                 and give --key-file (or option key_file); --plaintext is for lab use only"),
            ));
        }
        let mtu: Option<u32> = r.one("mtu");
        if let Some(m) = mtu.filter(|m| *m > MAX_MTU) {
            errors.push(r.option_error(
                "mtu",
                format_args!("{m} is larger than the tunnel's maximum MTU {MAX_MTU}"),
            ));
        }
        let secs = |name| Duration::from_secs(r.one::<u32>(name).unwrap_or_default().into());
        let (keepalive, timeout) = (secs("keepalive"), secs("timeout"));
        if timeout <= keepalive {
            errors.extend(r.rule_error(
                &["timeout", "keepalive"],
                format_args!(
                    "timeout ({} s) must be longer than keepalive ({} s), or a quiet but live peer counts as dead",
                    timeout.as_secs(),
                    keepalive.as_secs()
                ),
            ));
        }
        ConfigError::join(errors)?;
        Ok(TunnelOptions {
            mode: r.one("mode").unwrap_or_default(),
            dev: r.one("dev").unwrap_or_default(),
            role,
            listen,
            remote,
            transport: r.one("transport").unwrap_or(Transport::Udp),
            key_file,
            plaintext,
            addresses: r.all("address"),
            mtu,
            keepalive,
            timeout,
            user: r.one("user"),
            verbose: r.flag("verbose"),
            syslog: r.flag("syslog"),
        })
    }
}

/// `tunbox tunnel ...`
pub fn cmd_tunnel(a: &cli::Tunnel) -> Result<(), AppError> {
    let o: TunnelOptions = options(a.section.as_deref(), &a.layered())?;
    Ok(tunnel_run::run(&o)?)
}

/// `tunbox genkey PATH`; `-` writes the key to stdout (as `wg genkey`), in the same
/// form as the file, so `tunbox genkey - > key` makes a valid key file.
pub fn cmd_genkey(a: &cli::Genkey) -> Result<(), AppError> {
    if a.path == "-" {
        use std::io::Write as _;
        let key = Key::generate().map_err(|e| AppError::Failed(format!("genkey: {e}")))?;
        let text = key.file_text(); // wiped on drop
        let mut out = std::io::stdout().lock();
        return out
            .write_all(&text[..])
            .and_then(|()| out.flush())
            .map_err(|e| SysError::os("genkey: cannot write the key to stdout", e).into());
    }
    let path = PathBuf::from(&a.path);
    keyfile::genkey(&path).map_err(|e| AppError::Failed(e.to_string()))?;
    log::info!(
        "wrote a new key to {} (mode 0600); copy it to the other end, e.g. with scp",
        path.display()
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::super::from_cli;
    use super::*;
    use crate::config;
    use crate::sys::tun::Mode;

    #[test]
    fn client_and_server_options() {
        let o = from_cli::<TunnelOptions>(&[("remote", "198.18.0.1:5555"), ("key_file", "/k")])
            .unwrap();
        assert_eq!(o.role, Role::Client);
        assert_eq!(o.remote, Some(("198.18.0.1".into(), 5555)));
        assert_eq!(o.transport, Transport::Udp);
        assert_eq!(o.dev, "tbx%d");
        assert_eq!(o.mode, Mode::Tun);
        assert_eq!(o.keepalive, Duration::from_secs(10));
        assert_eq!(o.timeout, Duration::from_secs(30));
        let o = from_cli::<TunnelOptions>(&[
            ("listen", "5555"),
            ("key_file", "/k"),
            ("transport", "tcp"),
            ("mode", "tap"),
        ])
        .unwrap();
        assert_eq!(o.role, Role::Server);
        assert_eq!(o.listen, Some("[::]:5555".parse().unwrap()));
        assert_eq!(o.transport, Transport::Tcp);
        assert_eq!(o.mode, Mode::Tap);
        let o =
            from_cli::<TunnelOptions>(&[("listen", "198.18.0.1:7"), ("plaintext", "1")]).unwrap();
        assert_eq!(o.listen, Some("198.18.0.1:7".parse().unwrap()));
        assert!(o.plaintext);
    }

    #[test]
    fn bad_combinations_are_rejected_with_a_reason() {
        let e =
            from_cli::<TunnelOptions>(&[("remote", "h:1"), ("listen", "1"), ("key_file", "/k")])
                .unwrap_err();
        assert!(e.msg.contains("not both"), "{e}");
        let e = from_cli::<TunnelOptions>(&[("key_file", "/k")]).unwrap_err();
        assert!(e.msg.contains("listen"), "{e}");
        let e = from_cli::<TunnelOptions>(&[("remote", "h:1")]).unwrap_err();
        assert!(e.msg.contains("tunbox genkey"), "{e}");
        let e = from_cli::<TunnelOptions>(&[
            ("remote", "h:1"),
            ("key_file", "/k"),
            ("keepalive", "30"),
            ("timeout", "30"),
        ])
        .unwrap_err();
        assert!(e.msg.contains("longer than keepalive"), "{e}");
        let e =
            from_cli::<TunnelOptions>(&[("remote", "h:1"), ("key_file", "/k"), ("mtu", "60000")])
                .unwrap_err();
        assert!(
            e.to_string().contains("--mtu") && e.msg.contains("maximum MTU"),
            "{e}"
        );
        let e =
            from_cli::<TunnelOptions>(&[("listen", "myhost:1"), ("key_file", "/k")]).unwrap_err();
        assert!(e.msg.contains("not an IP address"), "{e}");
    }

    #[test]
    fn uci_errors_name_file_and_line() {
        let text = "config tunnel 'a'\n\toption remote 'h:1'\n\toption key_file '/k'\n\toption keepalive '40'\n";
        let f = config::uci::parse("/etc/config/tunbox", text).unwrap();
        let s = f.section("a").unwrap();
        let r =
            config::resolve(&schema::TUNNEL, Some(("/etc/config/tunbox", s)), &[], &[]).unwrap();
        let e = TunnelOptions::from_resolved(&r).unwrap_err();
        // the rule between keepalive and timeout points at keepalive, the one set
        assert_eq!(e.line, Some(4));
        assert!(e.to_string().starts_with("/etc/config/tunbox:4:"), "{e}");
    }
}
