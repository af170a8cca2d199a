//! The command line: any argument list is either parsed by argh into the commands'
//! structs or answered with help or a usage error (never a panic), and the options of
//! a tool, layered as `tunbox TOOL ...` does (no environment, no file), become its typed
//! settings or a configuration error that names the option.
#![no_main]
use libfuzzer_sys::fuzz_target;
use tunbox::cli::{self, BridgeAction, Cmd};
use tunbox::commands::ToolOptions;
use tunbox::config::{self, ConfigError};

fn typed<T: ToolOptions>(given: &[(&'static str, Vec<String>)]) {
    match config::resolve(T::SPEC, None, &[], given) {
        Ok(r) => {
            if let Err(e) = T::from_resolved(&r) {
                assert!(!e.to_string().is_empty());
            }
        }
        Err(ConfigError { .. }) => {}
    }
}

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    let args: Vec<&str> = text.split('\0').take(16).collect();
    match cli::parse("tunbox", &args) {
        Err(early) => assert!(!early.output.is_empty()),
        Ok(top) => match top.cmd {
            Some(Cmd::Reflect(a)) => typed::<tunbox::reflect::ReflectOptions>(&a.layered().0),
            Some(Cmd::Tunnel(a)) => typed::<tunbox::tunnel_run::TunnelOptions>(&a.layered().0),
            Some(Cmd::Probe(a)) => typed::<tunbox::probe::ProbeOptions>(&a.layered().0),
            Some(Cmd::Bridge(b)) => match &b.action {
                BridgeAction::Up(a) => typed::<tunbox::bridge::Settings>(&a.layered().0),
                BridgeAction::Down(a) => typed::<tunbox::bridge::Settings>(&a.layered().0),
                BridgeAction::Status(a) => typed::<tunbox::bridge::Settings>(&a.layered().0),
            },
            _ => {}
        },
    }
});
