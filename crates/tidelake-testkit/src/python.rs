//! The project's Python (the oracle's venv with pypaimon and moto): env
//! `TIDELAKE_PYTHON`, else `<workspace>/.venv/bin/python`, which
//! `scripts/test` creates.

use std::path::{Path, PathBuf};

/// The workspace root, from this crate's own location.
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

/// The Python to use, or why there is none.
pub fn find() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("TIDELAKE_PYTHON").filter(|p| !p.is_empty()) {
        return Ok(PathBuf::from(path));
    }
    let venv = workspace_root().join(".venv/bin/python");
    if venv.exists() {
        Ok(venv)
    } else {
        Err(format!(
            "no Python found: set TIDELAKE_PYTHON or run scripts/test, which creates {}",
            venv.display()
        ))
    }
}

/// The Python, or `None` after a note naming `what` is skipped. Under CI
/// (env `CI` set) a missing Python fails the test instead.
pub fn or_skip(what: &str) -> Option<PathBuf> {
    match find() {
        Ok(path) => Some(path),
        Err(why) if std::env::var_os("CI").is_some() => {
            panic!("CI is set but {what} cannot run: {why}")
        }
        Err(why) => {
            eprintln!("note: {what} skipped: {why}");
            None
        }
    }
}
