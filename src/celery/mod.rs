//! prodserver's built-in Celery integration: a small Python module, embedded
//! in the binary, that reports a worker's or beat's readiness and liveness
//! over `NOTIFY_SOCKET` (see `prodserver_celery.py` for what it sends).
//!
//! Theory of operation. [`install`] writes the module into the runtime
//! directory once per content (`RUNTIME/py-HASH/prodserver_celery.py`, so
//! supervisors of different versions sharing RUNTIME never swap it under
//! each other); [`integrate`] adjusts a Celery process's argv and
//! environment to load it:
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

use std::fs::{self, OpenOptions};
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::plan::BackendKind;

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
    runtime_dir.join(format!("py-{:08x}", fnv1a(SOURCE.as_bytes()) as u32))
}

/// Writes the module (atomically, only if missing or different) and
/// returns the folder to put first on the child's `PYTHONPATH`.
pub fn install(runtime_dir: &Path) -> io::Result<PathBuf> {
    let dir = module_dir(runtime_dir);
    crate::os::ensure_own_dir(&dir, 0o755)?;
    let file = dir.join(format!("{MODULE}.py"));
    if fs::read(&file).is_ok_and(|have| have == SOURCE.as_bytes()) {
        return Ok(dir);
    }
    let tmp = dir.join(format!(".{MODULE}.py.{}.tmp", std::process::id()));
    let written = (|| {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .custom_flags(libc::O_NOFOLLOW)
            .open(&tmp)?;
        f.write_all(SOURCE.as_bytes())?;
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

/// A Celery process's command line and extra environment with the
/// integration loaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Integration {
    pub argv: Vec<String>,
    /// Set these on top of the process's environment (they replace any
    /// `PYTHONPATH` it had; the old value is kept after ours).
    pub env: Vec<(String, String)>,
}

/// How to load the integration into `argv` (built by the celery-worker or
/// celery-beat backend), given the folder [`install`] returned and the
/// `PYTHONPATH` the child would otherwise get. `None` for other backends,
/// and for a beat whose app is not named with `-A`/`--app` (nothing to
/// stand in for). Pure.
pub fn integrate(
    kind: BackendKind,
    argv: &[String],
    module_dir: &Path,
    pythonpath: Option<&str>,
) -> Option<Integration> {
    let dir = module_dir.to_str()?;
    let path = match pythonpath {
        Some(old) if !old.is_empty() => format!("{dir}:{old}"),
        _ => dir.to_owned(),
    };
    match kind {
        BackendKind::CeleryWorker => Some(Integration {
            argv: worker_argv(argv),
            env: vec![("PYTHONPATH".to_owned(), path)],
        }),
        BackendKind::CeleryBeat => {
            let (argv, app) = beat_argv(argv)?;
            Some(Integration {
                argv,
                env: vec![("PYTHONPATH".to_owned(), path), (APP_ENV.to_owned(), app)],
            })
        }
        _ => None,
    }
}

/// Adds [`MODULE`] to the worker's `--include`. Click keeps only the last
/// `--include`/`-I` given, so all of them merge into the first one (in its
/// spelling), with the module last, rather than one replacing the others.
pub fn worker_argv(argv: &[String]) -> Vec<String> {
    let start = argv.iter().position(|a| a == "worker").map_or(0, |i| i + 1);
    // (index of the option, index of its value, the value's prefix)
    let mut found: Vec<(usize, usize, &str)> = Vec::new();
    let mut i = start;
    while i < argv.len() {
        let a = argv[i].as_str();
        if a == "--include" || a == "-I" {
            if i + 1 < argv.len() {
                found.push((i, i + 1, ""));
            }
            i += 2;
            continue;
        }
        if a.starts_with("--include=") {
            found.push((i, i, "--include="));
        } else if a.starts_with("-I") {
            found.push((i, i, "-I"));
        }
        i += 1;
    }
    let Some(&(_, first_value, first_prefix)) = found.first() else {
        let mut out = argv.to_vec();
        out.push(format!("--include={MODULE}"));
        return out;
    };
    let mut modules: Vec<&str> = Vec::new();
    for &(_, value, prefix) in &found {
        for m in argv[value][prefix.len()..].split(',').map(str::trim) {
            if !m.is_empty() && !modules.contains(&m) {
                modules.push(m);
            }
        }
    }
    if !modules.contains(&MODULE) {
        modules.push(MODULE);
    }
    let merged = format!("{first_prefix}{}", modules.join(","));
    let dropped: Vec<usize> = found[1..]
        .iter()
        .flat_map(|&(opt, value, _)| opt..=value)
        .collect();
    argv.iter()
        .enumerate()
        .filter(|(i, _)| !dropped.contains(i))
        .map(|(i, a)| {
            if i == first_value {
                merged.clone()
            } else {
                a.clone()
            }
        })
        .collect()
}

/// Replaces the app given to `celery` (`-A APP`, `-AAPP`, `--app=APP`,
/// `--app APP`, before the `beat` subcommand; the last wins, as in Click)
/// with [`MODULE`]; returns the new argv and the app it replaced.
pub fn beat_argv(argv: &[String]) -> Option<(Vec<String>, String)> {
    let end = argv.iter().position(|a| a == "beat").unwrap_or(argv.len());
    let mut found: Option<(usize, String)> = None; // (index of the value, prefix)
    let mut i = 1;
    while i < end {
        let a = &argv[i];
        if (a == "-A" || a == "--app") && i + 1 < end {
            found = Some((i + 1, String::new()));
            i += 2;
            continue;
        }
        if a.starts_with("--app=") {
            found = Some((i, "--app=".to_owned()));
        } else if a.starts_with("-A") && a.len() > 2 {
            found = Some((i, "-A".to_owned()));
        }
        i += 1;
    }
    let (idx, prefix) = found?;
    let app = argv[idx][prefix.len()..].to_owned();
    if app.is_empty() {
        return None;
    }
    let mut out = argv.to_vec();
    out[idx] = format!("{prefix}{MODULE}");
    Some((out, app))
}

/// FNV-1a: a stable content hash for the folder name (std's hashers are
/// not guaranteed stable across builds).
fn fnv1a(bytes: &[u8]) -> u64 {
    bytes.iter().fold(0xcbf2_9ce4_8422_2325, |h, &b| {
        (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::MetadataExt;
    use std::os::unix::fs::PermissionsExt;

    fn v(items: &[&str]) -> Vec<String> {
        items.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn worker_gets_an_include() {
        let argv = v(&[
            "celery",
            "-A",
            "shop",
            "worker",
            "-Q",
            "a,b",
            "--concurrency=4",
        ]);
        assert_eq!(
            worker_argv(&argv),
            v(&[
                "celery",
                "-A",
                "shop",
                "worker",
                "-Q",
                "a,b",
                "--concurrency=4",
                "--include=prodserver_celery"
            ])
        );
    }

    #[test]
    fn worker_includes_merge_into_one_with_the_module() {
        let cases = [
            (
                vec!["--include=a,b"],
                vec!["--include=a,b,prodserver_celery"],
            ),
            (
                vec!["--include", "a"],
                vec!["--include", "a,prodserver_celery"],
            ),
            (vec!["-I", "a"], vec!["-I", "a,prodserver_celery"]),
            (vec!["-Ia"], vec!["-Ia,prodserver_celery"]),
            (
                vec!["-I", "a", "--include=b"],
                vec!["-I", "a,b,prodserver_celery"],
            ),
            (
                vec!["--include=a,b", "-l", "info", "-Ic", "--include", "b, d"],
                vec!["--include=a,b,c,d,prodserver_celery", "-l", "info"],
            ),
            (
                vec!["--include=prodserver_celery,a", "-I", "b"],
                vec!["--include=prodserver_celery,a,b"],
            ),
            (
                vec!["--include=prodserver_celery"],
                vec!["--include=prodserver_celery"],
            ),
            (vec!["--include="], vec!["--include=prodserver_celery"]),
        ];
        for (extra, want) in cases {
            let mut argv = v(&["celery", "-A", "shop", "worker"]);
            argv.extend(extra.iter().map(|s| s.to_string()));
            let mut expected = v(&["celery", "-A", "shop", "worker"]);
            expected.extend(want.iter().map(|s| s.to_string()));
            assert_eq!(worker_argv(&argv), expected, "{extra:?}");
        }
        // `-I` before the subcommand is not the worker's.
        let argv = v(&["celery", "-A", "shop", "worker", "-l", "info"]);
        assert_eq!(
            worker_argv(&argv).last().unwrap(),
            "--include=prodserver_celery"
        );
    }

    #[test]
    fn beat_stands_in_for_the_app() {
        let argv = v(&["celery", "-A", "shop.celery.app", "beat", "--scheduler=x:Y"]);
        let (out, app) = beat_argv(&argv).unwrap();
        assert_eq!(
            out,
            v(&[
                "celery",
                "-A",
                "prodserver_celery",
                "beat",
                "--scheduler=x:Y"
            ])
        );
        assert_eq!(app, "shop.celery.app");
        for (form, want) in [
            (
                v(&["celery", "--app=shop", "beat"]),
                "--app=prodserver_celery",
            ),
            (v(&["celery", "-Ashop", "beat"]), "-Aprodserver_celery"),
            (v(&["celery", "--app", "shop", "beat"]), "prodserver_celery"),
        ] {
            let (out, app) = beat_argv(&form).unwrap();
            assert_eq!(app, "shop");
            assert!(out.contains(&want.to_owned()), "{out:?}");
        }
        assert_eq!(
            beat_argv(&v(&["celery", "beat", "-A", "x"])),
            None,
            "after beat"
        );
        assert_eq!(beat_argv(&v(&["celery", "beat"])), None);
    }

    #[test]
    fn integrate_sets_pythonpath_and_the_app() {
        let dir = Path::new("/run/prodserver/py-1");
        let worker = integrate(
            BackendKind::CeleryWorker,
            &v(&["celery", "-A", "shop", "worker"]),
            dir,
            Some("/srv/lib"),
        )
        .unwrap();
        assert_eq!(
            worker.env,
            vec![("PYTHONPATH".into(), "/run/prodserver/py-1:/srv/lib".into())]
        );
        let beat = integrate(
            BackendKind::CeleryBeat,
            &v(&["celery", "-A", "shop", "beat"]),
            dir,
            Some(""),
        )
        .unwrap();
        assert_eq!(
            beat.env,
            vec![
                ("PYTHONPATH".into(), "/run/prodserver/py-1".into()),
                ("PRODSERVER_CELERY_APP".into(), "shop".into()),
            ]
        );
        assert_eq!(
            integrate(BackendKind::Gunicorn, &v(&["gunicorn"]), dir, None),
            None
        );
    }

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
