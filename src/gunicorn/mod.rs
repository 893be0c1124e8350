//! prodserver's built-in gunicorn integration: a small config module,
//! embedded in the binary, that sends `READY=1` over `NOTIFY_SOCKET` once a
//! worker has loaded the app (see `prodserver_gunicorn.py`).
//!
//! Why: when the server cannot be probed from outside (a held or unix
//! socket, an inherited fd, an address only a config file knows), the only
//! honest readiness is the app's own word. gunicorn's own `READY=1` comes
//! from the arbiter right after binding, before any worker imported the
//! app: the module takes `NOTIFY_SOCKET` away from gunicorn, so that one
//! is never sent, and sends its own from `post_worker_init`.
//!
//! Loading: `--config=python:prodserver_gunicorn`, with the module's folder
//! first on `PYTHONPATH`. gunicorn reads one `--config` only, so the user's
//! own (`args.config`/`args.c`) moves to `PRODSERVER_GUNICORN_CONFIG`, and
//! the module loads it (or `./gunicorn.conf.py`, as gunicorn would) and
//! re-exports its settings, chaining its `post_worker_init`.
//!
//! One worker is enough for ready: the first worker that loaded the app
//! answers requests, and the others import the same code at the same time
//! (or fork from a preloaded master). Waiting for all of them would make
//! readiness hostage to the slowest one; during a surge the old generation
//! keeps accepting on the shared socket until the new one is ready, so
//! capacity never drops to one worker for long.
//!
//! [`install`] writes the module like the Celery integration's: once per
//! content, under `RUNTIME/py-HASH/`, 0755/0644 (a child running as another
//! `user` must read it; it holds no secret).

use std::io;
use std::path::{Path, PathBuf};

/// The Python module's name (what `--config=python:` names).
pub const MODULE: &str = "prodserver_gunicorn";
/// The module's source, embedded at build time.
pub const SOURCE: &str = include_str!("prodserver_gunicorn.py");
/// Names the user's own gunicorn config (`python:module` or a file).
pub const CONFIG_ENV: &str = "PRODSERVER_GUNICORN_CONFIG";

/// The folder [`install`] writes to, named after the module's hash. Pure,
/// so `check` can show the exact command line before anything is written.
pub fn module_dir(runtime_dir: &Path) -> PathBuf {
    crate::embedded::module_dir(runtime_dir, SOURCE)
}

/// Writes the module (atomically, only if missing or different) and
/// returns the folder to put first on the child's `PYTHONPATH`.
pub fn install(runtime_dir: &Path) -> io::Result<PathBuf> {
    crate::embedded::install(runtime_dir, MODULE, SOURCE)
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::fs;

    #[test]
    fn install_writes_the_module_once() {
        let runtime = tempfile::tempdir().unwrap();
        let dir = install(runtime.path()).unwrap();
        assert_eq!(dir, module_dir(runtime.path()));
        let file = dir.join("prodserver_gunicorn.py");
        assert_eq!(fs::read_to_string(&file).unwrap(), SOURCE);
        fs::write(&file, "tampered").unwrap();
        install(runtime.path()).unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), SOURCE);
        assert_ne!(
            module_dir(runtime.path()),
            crate::celery::module_dir(runtime.path()),
            "each module in its own folder: one never shadows the other's version"
        );
    }
}
