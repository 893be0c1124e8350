//! Python modules embedded in the binary (the Celery and gunicorn
//! integrations), written into the runtime directory for children to
//! import.
//!
//! Each goes under `RUNTIME/py-HASH/`, named after its content, so
//! supervisors of different versions sharing RUNTIME never swap a module
//! under each other and an upgrade never runs children against a stale
//! copy. The folder is 0755 and the file 0644: a child that runs as
//! another `user` must read it (it holds no secret).

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

/// The folder [`install`] writes `source` to. Pure, so `check` can show the
/// exact command line before anything is written.
pub fn module_dir(runtime_dir: &Path, source: &str) -> PathBuf {
    runtime_dir.join(format!("py-{:08x}", fnv1a(source.as_bytes()) as u32))
}

/// Writes `module`.py (atomically, only if missing or different) and
/// returns the folder to put first on the child's `PYTHONPATH`.
pub fn install(runtime_dir: &Path, module: &str, source: &str) -> io::Result<PathBuf> {
    let dir = module_dir(runtime_dir, source);
    crate::os::ensure_own_dir(&dir, 0o755)?;
    let file = dir.join(format!("{module}.py"));
    if fs::read(&file).is_ok_and(|have| have == source.as_bytes()) {
        return Ok(dir);
    }
    let tmp = dir.join(format!(".{module}.py.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(source.as_bytes())?;
        f.sync_all()?;
        fs::rename(&tmp, &file)
    })();
    if let Err(e) = written {
        let _ = fs::remove_file(&tmp);
        return Err(io::Error::new(
            e.kind(),
            format!("cannot write {file:?}: {e}"),
        ));
    }
    Ok(dir)
}

/// FNV-1a: a stable content hash for the folder name (std's hashers are
/// not guaranteed stable across builds).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}
