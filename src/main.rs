use std::io::Write as _;
use std::process::ExitCode;
use tunbox::app::{self, exit_with};
use tunbox::cli::{Cmd, ConfigAction, Top};

/// Parses the command line with `cli::parse`; prints help and usage errors without
/// panicking when stdout is closed (`tunbox --help | head -1`): usage errors exit 2,
/// like configuration errors.
fn parse_args() -> Result<Top, ExitCode> {
    let args: Vec<String> = std::env::args().collect();
    let name = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("tunbox");
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    tunbox::cli::parse(name, &rest).map_err(|early| {
        if early.help {
            tunbox::outln!("{}", early.output);
            ExitCode::SUCCESS
        } else {
            // not eprintln!: a closed stderr must not be a panic either
            let _ = writeln!(
                std::io::stderr(),
                "{}\nRun {} --help for more information.",
                early.output,
                early.command
            );
            ExitCode::from(2)
        }
    })
}

/// Temporary: `tunbox probe ...` is parsed by its argh struct until the whole command
/// line moves to argh (the lead rewires it then).
fn probe_main(rest: &[String]) -> ExitCode {
    let rest: Vec<&str> = rest.iter().map(String::as_str).collect();
    match <tunbox::probe::ProbeArgs as argh::FromArgs>::from_args(&["tunbox probe"], &rest) {
        Ok(a) => tunbox::probe::run(&a),
        Err(early) if early.status.is_ok() => {
            tunbox::outln!("{}", early.output);
            ExitCode::SUCCESS
        }
        Err(early) => {
            let _ = writeln!(
                std::io::stderr(),
                "{}\nRun tunbox probe --help for more information.",
                early.output
            );
            ExitCode::from(2)
        }
    }
}

fn main() -> ExitCode {
    let argv: Vec<String> = std::env::args().collect();
    if argv.get(1).map(String::as_str) == Some("probe") {
        return probe_main(&argv[2..]);
    }
    let top = match parse_args() {
        Ok(t) => t,
        Err(code) => return code,
    };
    if top.version {
        tunbox::outln!("tunbox {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    let Some(cmd) = top.cmd else {
        eprintln!("tunbox: no command given; `tunbox --help` lists them");
        return ExitCode::from(2);
    };
    match cmd {
        Cmd::Reflect(a) => exit_with(app::cmd_reflect(&a)),
        Cmd::Run(a) => exit_with(app::cmd_run(&a)),
        Cmd::Config(c) => match c.action {
            ConfigAction::Check(_) => exit_with(app::cmd_config_check()),
            ConfigAction::Show(a) => exit_with(app::cmd_config_show(&a)),
        },
        Cmd::Selftest(_) => tunbox::selftest::main(),
        Cmd::Tunnel(a) => exit_with(tunbox::tunnel_run::cmd_tunnel(&a)),
        Cmd::Genkey(a) => exit_with(tunbox::tunnel_run::cmd_genkey(&a)),
        Cmd::Bridge(b) => tunbox::bridge::main_bridge(&b),
        Cmd::Mktun(m) => tunbox::bridge::main_mktun(&m),
        Cmd::Rmtun(r) => tunbox::bridge::main_rmtun(&r),
    }
}
