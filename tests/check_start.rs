//! What `check` accepts, `start` runs: the binary's `check` and `start` on
//! configs that depend on this host (users, ports in use, file descriptor
//! limits) and on the processes chosen at start.

mod support;

use std::time::Duration;

use support::{Project, BIN};

const T: Duration = Duration::from_secs(20);

#[test]
fn start_with_a_subset_warns_about_queues_nobody_consumes() {
    let p = Project::new(
        r#"
[prodserver]
queues = ["default"]

[processes.worker]
backend = "celery-worker"
app = "shop"
queues = ["default"]

[processes.job]
backend = "command"
command = ["true"]
oneshot = true
"#,
    );
    // One pipe for stdout and stderr, so the order of lines is the order
    // prodserver wrote them in.
    let mut sh = std::process::Command::new("sh");
    sh.args(["-c", "exec \"$0\" start job 2>&1", BIN])
        .current_dir(p.path())
        .env("XDG_RUNTIME_DIR", p.runtime_dir())
        .env("NO_COLOR", "1")
        .env_remove("PRODSERVER_CONFIG");
    let mut running = support::Running::spawn(sh);
    let code = running.wait_exit(T);
    let out = running.output();
    assert_eq!(code, 0, "{out}");
    let lines: Vec<&str> = out.lines().collect();
    let warning = lines
        .iter()
        .position(|l| {
            l.starts_with("warning: queue \"default\"")
                && l.contains("no celery-worker started here")
        })
        .unwrap_or_else(|| panic!("no warning in:\n{out}"));
    let spawned = lines
        .iter()
        .position(|l| l.contains("job") && l.contains("spawned"))
        .unwrap_or_else(|| panic!("job not spawned:\n{out}"));
    assert!(
        warning < spawned,
        "the warning comes before starting:\n{out}"
    );
}

#[test]
fn an_unknown_user_is_refused_by_check_and_start_with_its_location() {
    let p = Project::new(
        "[processes.job]\nbackend = \"command\"\ncommand = [\"true\"]\nuser = \"no-such-user-prodserver\"\n",
    );
    for cmd in ["check", "start"] {
        let (code, out) = p.run(&[cmd], T);
        assert_eq!(code, 2, "{cmd}: {out}");
        assert!(
            out.contains("prodserver.toml:4:8") && out.contains("does not exist"),
            "{cmd}: {out}"
        );
        assert!(out.contains("help: create it"), "{cmd}: {out}");
    }
}

#[test]
fn check_warns_when_a_bind_address_is_already_in_use() {
    let taken = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
    let port = taken.local_addr().expect("addr").port();
    let p = Project::new(&format!(
        "[processes.web]\nbackend = \"gunicorn\"\napp = \"shop.wsgi:application\"\nargs = {{ bind = \"127.0.0.1:{port}\" }}\n"
    ));
    let (code, out) = p.run(&["check"], T);
    assert_eq!(code, 0, "a warning, not an error: {out}");
    assert!(
        out.contains(&format!(
            "`web` binds 127.0.0.1:{port}, which is already in use"
        )),
        "{out}"
    );
    assert!(out.contains("prodserver.toml:4:17"), "{out}");
    drop(taken);
    let (code, out) = p.run(&["check"], T);
    assert_eq!(code, 0, "{out}");
    assert!(!out.contains("already in use"), "{out}");
}

#[test]
fn check_warns_when_the_plan_needs_more_descriptors_than_the_hard_limit() {
    let p = Project::new(
        "[processes.web]\nbackend = \"command\"\ncommand = [\"sleep\", \"1\"]\ninstances = 20\n",
    );
    let check_with_limit = |limit: Option<u32>| {
        let script = match limit {
            Some(n) => format!("ulimit -n {n} && exec \"$0\" check"),
            None => "exec \"$0\" check".to_string(),
        };
        let out = std::process::Command::new("sh")
            .args(["-c", &script, BIN])
            .current_dir(p.path())
            .env("XDG_RUNTIME_DIR", p.runtime_dir())
            .env("NO_COLOR", "1")
            .env_remove("PRODSERVER_CONFIG")
            .output()
            .expect("run");
        let text = String::from_utf8_lossy(&out.stdout).into_owned()
            + &String::from_utf8_lossy(&out.stderr);
        (out.status.code(), text)
    };
    // 32 + 6 per instance x 20 = 152 descriptors.
    let (code, out) = check_with_limit(Some(100));
    assert_eq!(code, Some(0), "{out}");
    assert!(
        out.contains("20 instances need about 152 file descriptors")
            && out.contains("hard limit of 100"),
        "{out}"
    );
    assert!(out.contains("prodserver.toml:4:13"), "{out}");
    let (code, out) = check_with_limit(Some(200));
    assert_eq!(code, Some(0), "{out}");
    assert!(!out.contains("file descriptors"), "{out}");
}
