//! `prodserver export`: every unit exported from the shipped configs passes
//! `systemd-analyze verify` (default and --per-process, system and --user
//! units), and the exported texts are pinned as snapshots.

use std::collections::BTreeSet;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn repo() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

fn tomls(folder: &str) -> Vec<PathBuf> {
    let mut files: Vec<PathBuf> = std::fs::read_dir(repo().join(folder))
        .unwrap_or_else(|e| panic!("{folder}: {e}"))
        .map(|e| e.expect("entry").path())
        .filter(|p| p.extension().is_some_and(|e| e == "toml"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no configs in {folder}");
    files
}

/// The shipped configs (the demo and every layout), and the check corpus's
/// good files, which add instances (a template unit), `user`/`group` and
/// every backend.
fn configs() -> Vec<PathBuf> {
    let mut files = vec![repo().join("prodserver.toml")];
    files.extend(tomls("examples/layouts"));
    files.extend(tomls("tests/corpus/good"));
    files
}

/// `systemd-analyze`, or a loud failure: this test is the proof that the
/// units load, so it must not pass vacuously.
fn systemd_analyze() -> PathBuf {
    let found = std::env::var_os("PATH").and_then(|path| {
        std::env::split_paths(&path)
            .map(|d| d.join("systemd-analyze"))
            .find(|p| p.is_file())
    });
    found.unwrap_or_else(|| {
        panic!(
            "systemd-analyze is missing: install it (`apt-get install -y systemd`, as .ci/run does); \
             the exported units cannot be verified without it"
        )
    })
}

/// A scratch project: the config copied in (its relative paths resolve
/// there), a `bin` for stand-ins of programs looked up on PATH, a runtime
/// directory for --user verification.
struct Scratch {
    dir: tempfile::TempDir,
    config: PathBuf,
}

impl Scratch {
    fn new(config: &Path) -> Scratch {
        let dir = tempfile::tempdir().expect("tempdir");
        let copy = dir.path().join(config.file_name().expect("name"));
        std::fs::copy(config, &copy).expect("copy config");
        // Its env files come along (they are read at load).
        let folder = config.parent().expect("folder");
        for e in std::fs::read_dir(folder).expect("config folder") {
            let p = e.expect("entry").path();
            if p.extension().is_some_and(|e| e == "env") {
                std::fs::copy(&p, dir.path().join(p.file_name().expect("name"))).expect("copy");
            }
        }
        for sub in ["bin", "xdg", "units"] {
            std::fs::create_dir(dir.path().join(sub)).expect("mkdir");
        }
        std::fs::set_permissions(
            dir.path().join("xdg"),
            std::fs::Permissions::from_mode(0o700),
        )
        .expect("chmod");
        Scratch { dir, config: copy }
    }

    fn path(&self, sub: &str) -> PathBuf {
        self.dir.path().join(sub)
    }

    fn export(&self, args: &[&str]) -> Output {
        Command::new(env!("CARGO_BIN_EXE_prodserver"))
            .arg("export")
            .args(args)
            .arg("-c")
            .arg(&self.config)
            .env_clear()
            .env("PATH", self.path("bin"))
            .env("XDG_RUNTIME_DIR", self.path("xdg"))
            .env("NO_COLOR", "1")
            .output()
            .expect("run prodserver export")
    }

    /// Exports into `units/` (emptied first) and returns the files, or
    /// the error output when the export was refused.
    fn export_to_units(&self, args: &[&str]) -> Result<Vec<PathBuf>, String> {
        let units = self.path("units");
        for e in std::fs::read_dir(&units).expect("units") {
            std::fs::remove_file(e.expect("entry").path()).expect("rm");
        }
        let mut all: Vec<&str> = args.to_vec();
        let out_dir = units.to_str().expect("utf-8 path").to_owned();
        all.extend(["-o", &out_dir]);
        let out = self.export(&all);
        if !out.status.success() {
            return Err(String::from_utf8_lossy(&out.stderr).into_owned());
        }
        let mut files: Vec<PathBuf> = std::fs::read_dir(&units)
            .expect("units")
            .map(|e| e.expect("entry").path())
            .collect();
        files.sort();
        assert!(!files.is_empty(), "nothing exported");
        Ok(files)
    }

    /// Stand-ins for every program the units start that does not exist
    /// here (a virtualenv's gunicorn, redis-server): `verify` checks that
    /// each ExecStart= is executable. Bare names go into `bin` (then found
    /// on PATH by the next export); absolute ones must lie in the scratch
    /// folder, never elsewhere on this machine.
    fn stub_programs(&self, units: &[PathBuf]) -> bool {
        let mut made = false;
        for unit in units {
            let text = std::fs::read_to_string(unit).expect("read unit");
            for line in text.lines() {
                let Some(cmd) = line.strip_prefix("ExecStart=") else {
                    continue;
                };
                let program = cmd.split(' ').next().expect("a word");
                let path = if program.starts_with('/') {
                    PathBuf::from(program)
                } else {
                    self.path("bin").join(program)
                };
                if path.exists() {
                    continue;
                }
                assert!(
                    path.starts_with(self.dir.path()),
                    "{}: {program} is missing outside the scratch folder",
                    unit.display()
                );
                std::fs::create_dir_all(path.parent().expect("parent")).expect("mkdir");
                std::fs::write(&path, "#!/bin/sh\n").expect("stub");
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755))
                    .expect("chmod");
                made = true;
            }
        }
        made
    }

    fn verify(&self, user: bool, units: &[PathBuf]) -> Output {
        let mut cmd = Command::new(systemd_analyze());
        if user {
            cmd.arg("--user");
        }
        cmd.arg("verify")
            .args(units)
            .env("XDG_RUNTIME_DIR", self.path("xdg"))
            .env("SYSTEMD_LOG_COLOR", "0")
            .output()
            .expect("run systemd-analyze")
    }
}

const MODES: [&[&str]; 4] = [
    &["systemd"],
    &["systemd", "--user"],
    &["systemd", "--per-process"],
    &["systemd", "--per-process", "--user"],
];

/// Exports `config` in every mode and runs `systemd-analyze verify` on
/// the units; returns the unit names verified and the number of --user
/// exports refused (a file whose processes set `user`/`group`).
fn verify_every_mode(config: &Path) -> (BTreeSet<String>, usize) {
    let needs_root = std::fs::read_to_string(config)
        .expect("read config")
        .lines()
        .any(|l| l.starts_with("user =") || l.starts_with("group ="));
    let mut verified = BTreeSet::new();
    let mut refused = 0;
    for args in MODES {
        let scratch = Scratch::new(config);
        let user = args.contains(&"--user");
        let exported = scratch.export_to_units(args);
        if user && needs_root {
            // A --user unit cannot drop privileges: refused, not exported
            // broken.
            let e = exported.expect_err("a --user export of a file with `user` was accepted");
            assert!(e.contains("--user unit runs as you"), "{e}");
            refused += 1;
            continue;
        }
        let fail = |e: String| panic!("export {args:?} of {}: {e}", config.display());
        let mut units = exported.unwrap_or_else(fail);
        if scratch.stub_programs(&units) {
            units = scratch.export_to_units(args).unwrap_or_else(fail);
            assert!(!scratch.stub_programs(&units), "stubs were not picked up");
        }
        let out = scratch.verify(user, &units);
        let text = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        // verify exits 0 on settings it ignores ("Failed to parse ...,
        // ignoring"): any output at all is a failure, except systemd's lint
        // of the corpus's own choice of `user = "nobody"`, which the unit
        // carries over faithfully.
        let complaints: Vec<&str> = text
            .lines()
            .filter(|l| !l.trim().is_empty())
            .filter(|l| {
                !(needs_root && l.ends_with("Special user nobody configured, this is not safe!"))
            })
            .collect();
        assert!(
            out.status.success() && complaints.is_empty(),
            "systemd-analyze verify, {} exported with {args:?}:\n{text}\n{}",
            config.display(),
            units
                .iter()
                .map(|u| format!(
                    "--- {}\n{}",
                    u.display(),
                    std::fs::read_to_string(u).unwrap_or_default()
                ))
                .collect::<String>()
        );
        verified.extend(
            units
                .iter()
                .map(|u| u.file_name().expect("name").to_string_lossy().into_owned()),
        );
    }
    (verified, refused)
}

#[test]
fn every_exported_unit_passes_systemd_analyze_verify() {
    let mut verified = BTreeSet::new();
    let mut refused = 0;
    for config in configs() {
        let (units, r) = verify_every_mode(&config);
        verified.extend(units);
        refused += r;
    }
    assert!(
        verified.len() > 20,
        "only {} units verified",
        verified.len()
    );
    assert!(
        verified.iter().any(|u| u.ends_with("@.service")),
        "no template unit verified"
    );
    assert_eq!(
        refused, 2,
        "the file with `user` refused in both --user modes"
    );
}

/// What a unit must escape or quote, checked against systemd itself:
/// quotes, backslashes, `%`, `$`, a lone `;`, an empty word, a tab, blanks,
/// `{instance}` in a template, notify readiness and a watchdog, every
/// restart policy.
const EDGES: &str = r#"
[prodserver]
name = "edge"
env = { QUOTED = "say \"hi\" \\ back", PERCENT = "100% $HOME $${X}", SPACES = " a  b " }

[processes.web]
backend = "command"
command = ["/bin/sh", "-c", "echo \"$PRODSERVER_INSTANCE\" 100% ; exec sleep 1000", ""]
instances = 3
env = { PORT = "800{instance}" }
health = { notify = true, watchdog = "10s" }
stop_signal = "INT"
restart = "on-failure"
max_restarts = 0

[processes.migrate]
backend = "command"
command = ["/bin/true", ";", "a;b", "tab\there", "%i", "$MAINPID"]
oneshot = true

[processes.worker]
backend = "command"
command = "/bin/sleep 1000"
restart = "never"
stop_signal = "RTMIN+3"
depends_on = { web = "healthy", migrate = "completed" }
"#;

#[test]
fn quoting_and_escaping_pass_systemd_analyze_verify() {
    let dir = tempfile::tempdir().expect("tempdir");
    let config = dir.path().join("prodserver.toml");
    std::fs::write(&config, EDGES).expect("write config");
    let (units, refused) = verify_every_mode(&config);
    assert_eq!(refused, 0);
    assert!(units.contains("edge-web@.service"), "{units:?}");
    let scratch = Scratch::new(&config);
    let text = normalized(&scratch, &scratch.export(&["systemd", "--per-process"]));
    insta::assert_snapshot!("edge-per-process", text);
}

/// Export output with this machine's paths replaced.
fn normalized(scratch: &Scratch, out: &Output) -> String {
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8_lossy(&out.stdout)
        .replace(env!("CARGO_BIN_EXE_prodserver"), "$PRODSERVER")
        .replace(&scratch.dir.path().display().to_string(), "$ROOT")
}

#[test]
fn the_demo_exports_pinned_units_and_procfile() {
    let scratch = Scratch::new(&repo().join("prodserver.toml"));
    // A system unit's User= depends on who owns the file here: the --user
    // unit is pinned, the owner rule is a unit test.
    let single = normalized(&scratch, &scratch.export(&["systemd", "--user"]));
    insta::assert_snapshot!("demo-single-user", single);
    let per_process = normalized(&scratch, &scratch.export(&["systemd", "--per-process"]));
    insta::assert_snapshot!("demo-per-process", per_process);
    let procfile = normalized(&scratch, &scratch.export(&["procfile"]));
    insta::assert_snapshot!("demo-procfile", procfile);
}

#[test]
fn instances_export_a_template() {
    let scratch = Scratch::new(&repo().join("tests/corpus/good/design.toml"));
    let text = normalized(&scratch, &scratch.export(&["systemd", "--per-process"]));
    insta::assert_snapshot!("design-per-process", text);
}

#[test]
fn the_procfile_is_written_with_dash_o() {
    let scratch = Scratch::new(&repo().join("examples/layouts/multiple-queues.toml"));
    let file = scratch.path("Procfile");
    let out = scratch.export(&["procfile", "-o", file.to_str().expect("utf-8")]);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let text = std::fs::read_to_string(&file).expect("Procfile written");
    assert!(text.contains("\nworker-default: "), "{text}");
    assert!(out.stdout.is_empty(), "printed as well");
}
