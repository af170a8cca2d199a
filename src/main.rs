fn main() {
    let top: tunbox::cli::Top = argh::from_env();
    if top.version {
        println!("tunbox {}", env!("CARGO_PKG_VERSION"));
        return;
    }
    use tunbox::cli::Cmd;
    match &top.cmd {
        Some(Cmd::Bridge(b)) => std::process::exit(tunbox::bridge::main_bridge(b)),
        Some(Cmd::Mktun(m)) => std::process::exit(tunbox::bridge::main_mktun(m)),
        Some(Cmd::Rmtun(r)) => std::process::exit(tunbox::bridge::main_rmtun(r)),
        _ => {}
    }
}
