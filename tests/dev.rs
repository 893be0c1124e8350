//! `prodserver dev` with real children (python3, stdlib only): a saved
//! file restarts exactly the processes watching it, ignored files restart
//! nothing, bursts coalesce, self-writing processes don't loop, `--poll`,
//! `.dev` overrides, and keys on a terminal. Each child writes its pid
//! atomically into `pids/NAME` at start; every wait polls with a deadline.

mod support;

use std::io::Write;
use std::os::fd::AsFd;
use std::process::Stdio;
use std::time::{Duration, Instant};

use support::{wait_until, Project, Running};

const T: Duration = Duration::from_secs(20);
/// The issue's bound from a save to the restarted process.
const RESTART_WITHIN: Duration = Duration::from_secs(1);

/// The child every test runs: writes its pid (and optionally a file into
/// the watched tree) at start, prints `MODE=...`, ends on TERM. A `.txt`
/// so that no `**/*.py` glob watches the child itself.
const CHILD: &str = r#"
import os, signal, sys, time
name = sys.argv[1]
if len(sys.argv) > 2:
    with open(sys.argv[2], "w") as f:
        f.write("GENERATED = True\n")
os.makedirs("pids", exist_ok=True)
tmp = "pids/." + name + ".tmp"
with open(tmp, "w") as f:
    f.write(str(os.getpid()))
os.rename(tmp, "pids/" + name)
print("MODE=" + os.environ.get("MODE", "-"), flush=True)
signal.signal(signal.SIGTERM, lambda *a: sys.exit(0))
while True:
    time.sleep(60)
"#;

fn project(config: &str) -> Project {
    let p = Project::new(config);
    p.write("child.txt", CHILD);
    for dir in ["web", "orders", "pids"] {
        std::fs::create_dir_all(p.path().join(dir)).unwrap();
    }
    p.write("web/views.py", "VIEWS = 1\n");
    p.write("orders/tasks.py", "TASKS = 1\n");
    p
}

const STACK: &str = r#"
[processes.web]
backend = "command"
command = ["python3", "child.txt", "web"]
watch = ["web/**/*.py"]

[processes.worker]
backend = "command"
command = ["python3", "child.txt", "worker"]
watch = ["orders/**/*.py"]
"#;

fn pid(p: &Project, name: &str) -> Option<i32> {
    std::fs::read_to_string(p.path().join("pids").join(name))
        .ok()?
        .trim()
        .parse()
        .ok()
}

/// Starts `prodserver dev ARGS` and waits until both processes run.
fn dev(p: &Project, args: &[&str], names: &[&str]) -> Running {
    let mut all = vec!["dev"];
    all.extend(args);
    let run = p.spawn(&all);
    for name in names {
        run.wait_for(&format!("{name}.1 | MODE="), T);
        assert!(wait_until(T, || pid(p, name).is_some()), "{}", run.output());
    }
    run.wait_for("dev: watching", T);
    run
}

/// The pids prodserver reported spawning for `name`, in order.
fn spawned(run: &Running, name: &str) -> Vec<i32> {
    let needle = format!("{name}.1 | spawned (pid ");
    run.lines()
        .iter()
        .filter_map(|l| l.split(&needle).nth(1)?.split(')').next()?.parse().ok())
        .collect()
}

/// Waits until prodserver spawns a process `name` other than `old`, and
/// that process has written its pid file; returns how long until the
/// spawn (the child's own start-up, seconds of Python under load, is not
/// prodserver's latency).
fn restarted(p: &Project, run: &Running, name: &str, old: i32) -> Duration {
    let t0 = Instant::now();
    assert!(
        wait_until(T, || spawned(run, name).last().is_some_and(|n| *n != old)),
        "{name} was not restarted:\n{}",
        run.output()
    );
    let took = t0.elapsed();
    let new = *spawned(run, name).last().unwrap();
    assert!(
        wait_until(T, || pid(p, name) == Some(new)),
        "{name} (pid {new}) did not start:\n{}",
        run.output()
    );
    took
}

/// Writes `rel` whole (temp file, rename), as editors save.
fn save(p: &Project, rel: &str, contents: &str) {
    let path = p.path().join(rel);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    let tmp = path.with_extension("swp-tmp");
    std::fs::write(&tmp, contents).unwrap();
    std::fs::rename(&tmp, &path).unwrap();
}

fn restart_lines(run: &Running) -> Vec<String> {
    run.lines()
        .into_iter()
        .filter(|l| l.contains("| restarting: "))
        .collect()
}

#[test]
fn saving_a_watched_file_restarts_only_its_process_within_a_second() {
    let p = project(STACK);
    let run = dev(&p, &[], &["web", "worker"]);
    let (web, worker) = (pid(&p, "web").unwrap(), pid(&p, "worker").unwrap());
    save(&p, "orders/tasks.py", "TASKS = 2\n");
    let took = restarted(&p, &run, "worker", worker);
    assert!(took <= RESTART_WITHIN, "{took:?}\n{}", run.output());
    run.wait_for("worker.1 | restarting: orders/tasks.py changed", T);
    assert_eq!(pid(&p, "web"), Some(web));
    // Both would have been asked in the same batch.
    assert_eq!(restart_lines(&run).len(), 1, "{}", run.output());
}

#[test]
fn ignored_files_restart_nothing() {
    let p = project(
        r#"
[processes.worker]
backend = "command"
command = ["python3", "child.txt", "worker"]
watch = ["**/*.py"]
"#,
    );
    p.write(".gitignore", "generated/\n");
    std::fs::create_dir_all(p.path().join("orders/generated")).unwrap();
    std::fs::create_dir_all(p.path().join("env")).unwrap();
    p.write("env/pyvenv.cfg", "home = /usr/bin\n");
    let run = dev(&p, &[], &["worker"]);
    let worker = pid(&p, "worker").unwrap();
    // A .gitignored folder (existing, and one created now), byte code, a
    // virtualenv by its pyvenv.cfg, .git, node_modules.
    save(&p, "orders/generated/schema.py", "X = 1\n");
    save(&p, "generated/new.py", "X = 1\n");
    save(&p, "orders/__pycache__/tasks.py", "X = 1\n");
    save(&p, "orders/tasks.pyc", "X = 1\n");
    save(&p, "env/lib/site.py", "X = 1\n");
    save(&p, ".git/hooks/x.py", "X = 1\n");
    save(&p, "node_modules/x/y.py", "X = 1\n");
    // The positive control: had any of those counted, this restart would
    // say "and N more files", or another restart would name them.
    save(&p, "orders/tasks.py", "TASKS = 2\n");
    restarted(&p, &run, "worker", worker);
    let new = pid(&p, "worker").unwrap();
    // A later, separate control proves nothing else was still pending.
    save(&p, "orders/tasks.py", "TASKS = 3\n");
    restarted(&p, &run, "worker", new);
    let lines = restart_lines(&run);
    assert_eq!(lines.len(), 2, "{}", run.output());
    for l in &lines {
        assert!(
            l.ends_with("restarting: orders/tasks.py changed"),
            "{}",
            run.output()
        );
    }
}

#[test]
fn twenty_saves_in_100ms_are_one_restart() {
    // The stimulus must be a burst: if this thread itself is descheduled
    // for a debounce window between two saves (a loaded CI), that is two
    // bursts, and the attempt says nothing. Retried on a fresh project.
    for _attempt in 0..3 {
        let p = project(STACK);
        let run = dev(&p, &[], &["web", "worker"]);
        let worker = pid(&p, "worker").unwrap();
        // Pacing the stimulus, not synchronising: 20 saves 5 ms apart.
        let mut times = Vec::new();
        for i in 0..20 {
            times.push(Instant::now());
            save(&p, &format!("orders/m{i:02}.py"), &format!("N = {i}\n"));
            std::thread::sleep(Duration::from_millis(5));
        }
        let longest = times.windows(2).map(|w| w[1] - w[0]).max().unwrap();
        if longest >= Duration::from_millis(30) {
            eprintln!("the saves were {longest:?} apart at worst: not one burst, again");
            continue;
        }
        restarted(&p, &run, "worker", worker);
        let new = pid(&p, "worker").unwrap();
        // The control: one more save is one more restart, so nothing of the
        // burst was still queued.
        save(&p, "orders/tasks.py", "TASKS = 2\n");
        restarted(&p, &run, "worker", new);
        let lines = restart_lines(&run);
        assert_eq!(lines.len(), 2, "{}", run.output());
        assert!(
            lines[0].ends_with("restarting: orders/m00.py changed and 19 more files"),
            "{}",
            run.output()
        );
        assert!(lines[1].ends_with("restarting: orders/tasks.py changed"));
        return;
    }
    panic!("three attempts to save 20 files within 100 ms were too slow");
}

#[test]
fn a_process_writing_into_its_own_watched_tree_does_not_loop() {
    let p = project(
        r#"
[processes.worker]
backend = "command"
command = ["python3", "child.txt", "worker", "orders/generated.py"]
watch = ["orders/**/*.py"]
"#,
    );
    // Its generated file exists already, as it would after the first run.
    p.write("orders/generated.py", "GENERATED = True\n");
    let run = dev(&p, &[], &["worker"]);
    let mut last = pid(&p, "worker").unwrap();
    // Each restarted worker rewrites orders/generated.py at start: were
    // that a change, it would restart again, and again.
    for n in 2..5 {
        save(&p, "orders/tasks.py", &format!("TASKS = {n}\n"));
        restarted(&p, &run, "worker", last);
        last = pid(&p, "worker").unwrap();
    }
    let lines = restart_lines(&run);
    assert_eq!(lines.len(), 3, "{}", run.output());
    assert!(
        !run.output().contains("generated.py changed"),
        "{}",
        run.output()
    );
}

#[test]
fn poll_mode_sees_saves() {
    let p = project(STACK);
    let run = dev(&p, &["--poll"], &["web", "worker"]);
    assert!(
        run.output().contains("polling every 250ms"),
        "{}",
        run.output()
    );
    let (web, worker) = (pid(&p, "web").unwrap(), pid(&p, "worker").unwrap());
    save(&p, "web/views.py", "VIEWS = 2\n");
    let took = restarted(&p, &run, "web", web);
    assert!(took <= RESTART_WITHIN, "{took:?}\n{}", run.output());
    run.wait_for("web.1 | restarting: web/views.py changed", T);
    assert_eq!(pid(&p, "worker"), Some(worker));
}

#[test]
fn dev_overrides_apply_and_start_does_not_see_them() {
    let config = r#"
[processes.web]
backend = "command"
command = ["python3", "child.txt", "web"]
env = { MODE = "prod" }
dev = { env = { MODE = "dev" } }

[processes.worker]
backend = "command"
command = ["python3", "child.txt", "worker"]
dev = { enabled = false }
"#;
    let p = project(config);
    let mut run = dev(&p, &[], &["web"]);
    run.wait_for("web.1 | MODE=dev", T);
    assert!(!run.output().contains("worker"), "{}", run.output());
    assert_eq!(pid(&p, "worker"), None);
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());

    let mut start = p.spawn(&["start"]);
    start.wait_for("web.1 | MODE=prod", T);
    start.wait_for("worker.1 | MODE=-", T);
    start.signal(libc::SIGTERM);
    assert_eq!(start.wait_exit(T), 0, "{}", start.output());
}

#[test]
fn check_dev_locates_an_error_in_an_override() {
    let p = project(
        "[processes.web]\nbackend = \"command\"\ncommand = \"true\"\n\n[processes.web.dev]\ninstances = \"two\"\n",
    );
    let (code, out) = p.run(&["check"], T);
    assert_eq!(code, 0, "{out}");
    let (code, out) = p.run(&["check", "--dev"], T);
    assert_eq!(code, 2, "{out}");
    assert!(out.contains("prodserver.toml:6:13"), "{out}");
}

/// prodserver with this pty as standard input.
fn dev_on_a_terminal(p: &Project, slave: std::os::fd::OwnedFd) -> Running {
    let run = Running::spawn_with_stdin(p.command(&["dev"]), Stdio::from(slave));
    run.wait_for("dev: keys:", T);
    run
}

fn canonical(fd: impl AsFd) -> bool {
    nix::sys::termios::tcgetattr(fd)
        .unwrap()
        .local_flags
        .contains(nix::sys::termios::LocalFlags::ICANON | nix::sys::termios::LocalFlags::ECHO)
}

#[test]
fn keys_restart_one_process_and_quit_restoring_the_terminal() {
    let p = project(STACK);
    let pty = nix::pty::openpty(None, None).expect("openpty");
    for fd in [&pty.master, &pty.slave] {
        nix::fcntl::fcntl(
            fd,
            nix::fcntl::FcntlArg::F_SETFD(nix::fcntl::FdFlag::FD_CLOEXEC),
        )
        .expect("FD_CLOEXEC");
    }
    let probe = pty.slave.try_clone().unwrap();
    assert!(canonical(&probe));
    let mut run = dev_on_a_terminal(&p, pty.slave);
    assert!(
        run.output().contains("1 web, 2 worker"),
        "the listing numbers the processes: {}",
        run.output()
    );
    assert!(wait_until(T, || pid(&p, "web").is_some()
        && pid(&p, "worker").is_some()));
    assert!(!canonical(&probe), "keys arrive one by one");
    let (web, worker) = (pid(&p, "web").unwrap(), pid(&p, "worker").unwrap());
    let mut master = std::fs::File::from(pty.master);
    master.write_all(b"2\r").unwrap();
    restarted(&p, &run, "worker", worker);
    run.wait_for("worker.1 | restarting: key 2 pressed", T);
    master.write_all(b"web\r").unwrap();
    restarted(&p, &run, "web", web);
    master.write_all(b"q").unwrap();
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
    assert!(canonical(&probe), "the terminal's mode is restored");
}

#[test]
fn without_a_terminal_there_are_no_keys() {
    let p = project(STACK);
    let run = dev(&p, &[], &["web", "worker"]);
    assert!(!run.output().contains("dev: keys:"), "{}", run.output());
}
