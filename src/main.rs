use std::process::ExitCode;
use tunbox::app::{self, exit_with};
use tunbox::cli::{Cmd, ConfigAction, Top};

fn main() -> ExitCode {
    let top: Top = argh::from_env();
    if top.version {
        println!("tunbox {}", env!("CARGO_PKG_VERSION"));
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
