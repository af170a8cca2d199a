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
        Cmd::Tunnel(_) | Cmd::Genkey(_) | Cmd::Bridge(_) | Cmd::Mktun(_) | Cmd::Rmtun(_) => {
            eprintln!("tunbox: this command is not in this build yet");
            ExitCode::from(2)
        }
    }
}
