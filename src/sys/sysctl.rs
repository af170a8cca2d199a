//! Reading and writing /proc/sys values (the bridge netfilter switches).
use super::SysError;
use std::path::Path;

/// The value of a sysctl file, trimmed; `Ok(None)` when it does not exist (a module
/// not loaded, or a namespace without it).
pub fn read(path: &str) -> Result<Option<String>, SysError> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s.trim().to_string())),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(SysError::os(format_args!("cannot read {path}"), e)),
    }
}

pub fn write(path: &str, value: &str) -> Result<(), SysError> {
    std::fs::write(path, format!("{value}\n"))
        .map_err(|e| SysError::os(format_args!("cannot write {value} to {path}"), e))
}

/// The files of a sysctl directory whose names pass `keep`, sorted, each with its
/// value; empty when the directory is missing.
pub fn read_dir(dir: &str, keep: impl Fn(&str) -> bool) -> Result<Vec<(String, String)>, SysError> {
    if !Path::new(dir).is_dir() {
        return Ok(Vec::new());
    }
    let entries =
        std::fs::read_dir(dir).map_err(|e| SysError::os(format_args!("cannot list {dir}"), e))?;
    // sorted by insertion (a handful of names; no sort code linked for it)
    let mut names: Vec<String> = Vec::new();
    for e in entries.flatten() {
        if let Ok(n) = e.file_name().into_string() {
            if keep(&n) {
                let at = names.partition_point(|x| *x < n);
                names.insert(at, n);
            }
        }
    }
    let mut out = Vec::new();
    for n in names {
        let path = format!("{dir}/{n}");
        if let Some(v) = read(&path)? {
            out.push((path, v));
        }
    }
    Ok(out)
}
