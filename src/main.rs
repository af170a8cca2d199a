fn main() {
    let top: tunbox::cli::Top = argh::from_env();
    if top.version {
        println!("tunbox {}", env!("CARGO_PKG_VERSION"));
        return;
    }
}
