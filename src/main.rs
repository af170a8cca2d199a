use std::io::Write as _;
use std::process::ExitCode;
use tunbox::cli;
use tunbox::commands::{self, EXIT_USAGE};

/// Parses the command line with argh (`cli::parse`) and prints help and usage errors
/// here, without panicking when stdout or stderr is closed (`tunbox --help | head -1`):
/// help exits 0, a usage error 2, like a configuration error.
fn parse_args() -> Result<cli::Top, ExitCode> {
    // Not `std::env::args()`, which panics on an argument that is not UTF-8: such an
    // argument is a usage error, named (lossily) in the message.
    let mut args = Vec::new();
    for a in std::env::args_os() {
        match a.into_string() {
            Ok(a) => args.push(a),
            Err(a) => {
                let _ = writeln!(
                    std::io::stderr(),
                    "tunbox: the argument '{}' is not valid UTF-8",
                    a.to_string_lossy()
                );
                return Err(ExitCode::from(EXIT_USAGE));
            }
        }
    }
    let name = args
        .first()
        .and_then(|a| std::path::Path::new(a).file_name())
        .and_then(|n| n.to_str())
        .unwrap_or("tunbox");
    let rest: Vec<&str> = args.iter().skip(1).map(String::as_str).collect();
    cli::parse(name, &rest).map_err(|early| {
        if early.help {
            tunbox::outln!("{}", early.output);
            ExitCode::SUCCESS
        } else {
            // not eprintln!: a closed stderr must not be a panic either
            let _ = writeln!(
                std::io::stderr(),
                "{}\nRun {name} --help for more information.",
                early.output
            );
            ExitCode::from(EXIT_USAGE)
        }
    })
}

fn main() -> ExitCode {
    // the `log` backend (stderr; `--syslog` switches it later) before anything logs
    tunbox::sys::log::ensure_init();
    // The parsed command line lives until the process exits: never dropped, so no drop
    // code for every option of every command (about 1 KB on mipsel).
    let top = match parse_args() {
        Ok(t) => std::mem::ManuallyDrop::new(t),
        Err(code) => return code,
    };
    if top.version {
        tunbox::outln!("tunbox {}", env!("CARGO_PKG_VERSION"));
        return ExitCode::SUCCESS;
    }
    match &top.cmd {
        Some(cmd) => commands::run(cmd),
        None => {
            let _ = writeln!(
                std::io::stderr(),
                "tunbox: no command given; `tunbox --help` lists them"
            );
            ExitCode::from(EXIT_USAGE)
        }
    }
}
