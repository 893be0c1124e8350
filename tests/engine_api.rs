//! The engine steered through its library API, with real processes: a
//! rolling restart replaces every instance one at a time and answers once
//! done, scaling keeps the other instances' pids, stopping every process
//! keeps the supervisor running, and a start brings a process back.

mod support;

use prodserver::supervisor::core::{Reply, Request};
use support::engine::{ask, pid_of, status, wait_status, Setup, T};

#[test]
fn rolling_restart_scale_stop_and_start_through_the_inlet() {
    let setup = Setup::new(
        r#"
[processes.web]
backend = "command"
command = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"]
instances = 2

[processes.worker]
backend = "command"
command = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"]
"#,
    );
    let config = setup.config.clone();
    let load_opts = setup.load_options();
    let (code, text) = setup.run(async |control, _| {
        let before = wait_status(&control, "everything ready", |s| {
            s.iter().all(|i| i.state == "ready")
        })
        .await;
        let worker = pid_of(&before, "worker.1");
        let mut stream = control.subscribe_logs();

        // A rolling restart: both web instances are new, the worker is not.
        let reply = ask(
            &control,
            Request::Restart {
                process: "web".into(),
                instance: None,
                reason: None,
            },
        )
        .await;
        assert_eq!(reply, Reply::Done);
        let after = status(&control).await;
        for web in ["web.1", "web.2"] {
            assert_ne!(pid_of(&after, web), pid_of(&before, web), "{web}");
            assert!(pid_of(&after, web).is_some());
        }
        assert_eq!(pid_of(&after, "worker.1"), worker);
        // The log stream carried the restart, as written to the output.
        let mut seen = String::new();
        tokio::time::timeout(T, async {
            while !seen
                .lines()
                .any(|l| l.starts_with("web.2 ") && l.ends_with("| restarting: restart requested"))
            {
                let chunk = stream.recv().await.expect("stream open");
                seen.push_str(&String::from_utf8_lossy(&chunk));
            }
        })
        .await
        .unwrap_or_else(|_| panic!("not in the stream: {seen}"));
        drop(stream);

        // Scale up and down: the others keep their pids.
        let reply = ask(
            &control,
            Request::Scale {
                process: "web".into(),
                instances: 3,
            },
        )
        .await;
        assert_eq!(reply, Reply::Done);
        let scaled = status(&control).await;
        assert!(pid_of(&scaled, "web.3").is_some());
        assert_eq!(pid_of(&scaled, "web.1"), pid_of(&after, "web.1"));
        let reply = ask(
            &control,
            Request::Scale {
                process: "web".into(),
                instances: 1,
            },
        )
        .await;
        assert_eq!(reply, Reply::Done);
        let one = status(&control).await;
        assert_eq!(
            one.iter().filter(|s| s.id.process == "web").count(),
            1,
            "{one:?}"
        );
        assert_eq!(pid_of(&one, "web.1"), pid_of(&after, "web.1"));

        // A reload: web changed (rolls), worker unchanged (untouched),
        // beat added (starts).
        std::fs::write(
            &config,
            r#"
[processes.web]
backend = "command"
command = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"]
env = { CHANGED = "1" }

[processes.worker]
backend = "command"
command = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"]

[processes.beat]
backend = "command"
command = ["sh", "-c", "trap 'exit 0' TERM; while :; do sleep 0.05; done"]
"#,
        )
        .unwrap();
        let (reloaded, resolved) = prodserver::resolve::load(&config, &load_opts)
            .unwrap_or_else(|e| panic!("{:?}", e.diagnostics));
        let before_reload = status(&control).await;
        let reply = tokio::time::timeout(T, control.reload(reloaded.plan, resolved))
            .await
            .expect("reload answered")
            .expect("engine running");
        assert_eq!(reply, Reply::Done);
        let after_reload = status(&control).await;
        assert_eq!(
            pid_of(&after_reload, "worker.1"),
            pid_of(&before_reload, "worker.1")
        );
        assert_ne!(
            pid_of(&after_reload, "web.1"),
            pid_of(&before_reload, "web.1")
        );
        assert!(
            pid_of(&after_reload, "beat.1").is_some(),
            "{after_reload:?}"
        );

        // Stopping every process keeps the supervisor alive.
        for p in ["web", "worker", "beat"] {
            let reply = ask(&control, Request::Stop { process: p.into() }).await;
            assert_eq!(reply, Reply::Done);
        }
        let stopped = status(&control).await;
        assert!(stopped.iter().all(|s| s.pid.is_none()), "{stopped:?}");
        let reply = ask(
            &control,
            Request::Start {
                process: "worker".into(),
            },
        )
        .await;
        assert_eq!(reply, Reply::Done);
        assert!(pid_of(&status(&control).await, "worker.1").is_some());
    });
    assert_eq!(code, 0, "{text}");
    assert!(text.contains("restarting: restart requested"), "{text}");
}
