//! prodserver's built-in Celery integration: a small Python module, embedded
//! in the binary, that reports a worker's or beat's readiness and liveness
//! over `NOTIFY_SOCKET` (see `prodserver_celery.py` for what it sends).
//!
//! Theory of operation. [`install`] writes the module into the runtime
//! directory once per content (`RUNTIME/py-HASH/prodserver_celery.py`, so
//! supervisors of different versions sharing RUNTIME never swap it under
//! each other); the celery-worker and celery-beat backends load it into
//! their typed launch (`backend::Launch::celery`):
//!
//! - worker: `--include=prodserver_celery`, merged with every `--include`/`-I`
//!   the user passed into one option (Celery keeps only the last one);
//! - beat: `celery beat` has no `--include`, so the module stands in for
//!   the app: `-A prodserver_celery` with the real app in
//!   `PRODSERVER_CELERY_APP`, which the module loads with Celery's own
//!   `find_app`, before connecting its `beat_init` handler;
//! - both: the module's folder goes first on `PYTHONPATH`.
//!
//! The directory is 0755 and the file 0644: a child that runs as another
//! `user` must read it (RUNTIME itself is then 0711, see
//! `os::share_runtime_dir`). It holds no secret.

use std::io;
use std::path::{Path, PathBuf};
use std::time::Duration;

/// The Python module's name (what `--include` and `-A` name).
pub const MODULE: &str = "prodserver_celery";
/// The module's source, embedded at build time.
pub const SOURCE: &str = include_str!("prodserver_celery.py");
/// Names the real app when the module stands in for it (beat).
pub const APP_ENV: &str = "PRODSERVER_CELERY_APP";
/// The module pings at most every 10 s (a third of `WATCHDOG_USEC`,
/// capped); three periods make the default watchdog of Celery processes.
pub const WATCHDOG: Duration = Duration::from_secs(30);

/// The folder [`install`] writes to: named after the module's hash, so a
/// prodserver upgrade never runs children against a stale copy. Pure, so
/// `check` can show the exact command line before anything is written.
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
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::fs::PermissionsExt;

    #[test]
    fn install_writes_once_and_repairs() {
        let runtime = tempfile::tempdir().unwrap();
        let dir = install(runtime.path()).unwrap();
        let file = dir.join("prodserver_celery.py");
        assert_eq!(fs::read_to_string(&file).unwrap(), SOURCE);
        assert_eq!(
            fs::metadata(&file).unwrap().permissions().mode() & 0o777,
            0o644
        );
        assert_eq!(
            fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
            0o755
        );
        let inode = fs::metadata(&file).unwrap().ino();
        assert_eq!(install(runtime.path()).unwrap(), dir);
        assert_eq!(
            fs::metadata(&file).unwrap().ino(),
            inode,
            "unchanged: not rewritten"
        );
        fs::write(&file, "tampered").unwrap();
        install(runtime.path()).unwrap();
        assert_eq!(fs::read_to_string(&file).unwrap(), SOURCE);
        let leftovers: Vec<_> = fs::read_dir(&dir)
            .unwrap()
            .flatten()
            .filter(|e| e.file_name().to_string_lossy().ends_with(".tmp"))
            .collect();
        assert!(leftovers.is_empty());
    }
}
