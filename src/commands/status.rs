//! `tunbox status [NAME] [--json]`: asks every running tunnel and reflector for its
//! state (see [`crate::status`]). Exit status 0, or 1 when NAME is not running.
use super::AppError;
use crate::cli;
use crate::status;
use crate::tunnel_run::hwm;

/// `tunbox status`
pub fn cmd_status(a: &cli::Status) -> Result<(), AppError> {
    let dir = hwm::run_dir();
    let mut docs = Vec::new();
    for path in status::sockets(&dir) {
        let Some(name) = path
            .file_name()
            .and_then(|n| n.to_str())
            .and_then(|n| n.strip_suffix(status::SUFFIX))
        else {
            continue;
        };
        if a.name.as_deref().is_some_and(|want| want != name) {
            continue;
        }
        match status::query(&path) {
            Ok(d) => docs.push(d),
            // A socket left by a process that is gone: not running.
            Err(e) if a.name.is_some() => {
                return Err(AppError::Failed(format!(
                    "{name}: not running ({}: {e})",
                    path.display()
                )))
            }
            Err(_) => {}
        }
    }
    if let (Some(n), true) = (&a.name, docs.is_empty()) {
        return Err(AppError::Failed(format!(
            "{n}: no tunnel or reflector of that name running (no {} in {})",
            status::socket_path(&dir, n).display(),
            dir.display()
        )));
    }
    if a.json {
        // One array of the documents.
        let mut out = String::from("[");
        for (i, d) in docs.iter().enumerate() {
            if i > 0 {
                out.push(',');
            }
            out.push_str(d.trim_end());
        }
        println!("{out}]");
    } else if docs.is_empty() {
        println!("no tunnels or reflectors running");
    } else {
        for d in &docs {
            print!("{}", status::human(d));
        }
    }
    Ok(())
}
