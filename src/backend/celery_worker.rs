//! `backend = "celery-worker"`:
//! `celery -A APP worker -Q QUEUES --concurrency=N --hostname=NAME.{instance}@%h [args...]`.

use super::{
    args, celery, forbid_args, BackendError, BackendInput, BackendKind, DefaultReadiness, Field,
};

pub(super) const SHAPE: &str =
    "celery -A APP worker -Q QUEUES --concurrency=N --hostname=NAME.{instance}@%h ARGS";

/// TERM is Celery's warm shutdown: the worker stops consuming, lets running
/// tasks finish and exits 0. INT twice or QUIT would cancel running tasks
/// (and, without `acks_late`, lose them).
pub(super) const STOP_SIGNAL: i32 = libc::SIGTERM;

/// Sent when the warm shutdown outlives `stop_timeout`. QUIT is Celery's
/// cold shutdown: it cancels the running tasks and, before exiting, puts
/// every unacknowledged message back on the broker, so an `acks_late` task
/// runs again on the next start. A SIGKILL instead leaves
/// it invisible on Redis until `visibility_timeout` (an hour by default).
/// With `worker_soft_shutdown_timeout` (Celery 5.5+) the tasks first get
/// that long to finish: keep `kill_timeout` above it.
pub(super) const ESCALATE_SIGNAL: i32 = libc::SIGQUIT;

/// How the loop words the escalation.
pub(super) const ESCALATE_MEANING: &str = "Celery cold shutdown: running tasks are cancelled \
     and their messages go back to the broker";

pub(super) const PIDFILE_WHY: &str =
    "prodserver already tracks the pid, and a stale pid file left by a killed \
     process makes Celery refuse to start (exit 73), so the process would never come back";

const CONCURRENCY_ENV: &str = "CELERYD_CONCURRENCY";

fn launch(input: &BackendInput, errs: &mut Vec<BackendError>) -> super::Launch {
    let argv = argv(input, errs);
    super::with_celery_integration(input, argv, DefaultReadiness::CeleryWorker, Vec::new())
}

pub(super) const BACKEND: super::Backend = super::Backend {
    program: super::CELERY,
    stop_signal: STOP_SIGNAL,
    shape: SHAPE,
    keys: &[
        super::BackendKey::App,
        super::BackendKey::Queues,
        super::BackendKey::Concurrency,
    ],
    launch,
};

pub(super) fn argv(input: &BackendInput, errs: &mut Vec<BackendError>) -> Vec<String> {
    let mut argv = celery(BackendKind::CeleryWorker, input, "worker", errs);

    if !input.queues.is_empty() {
        check_queues(input, errs);
        argv.push("-Q".to_owned());
        argv.push(input.queues.join(","));
    }

    if let Some(n) = concurrency(input, errs) {
        argv.push(format!("--concurrency={n}"));
    }

    // Celery's default node name is `celery@HOST`; two workers with the same
    // name on one host clash (mingle/gossip treat them as one node, and
    // `celery inspect` can't tell them apart).
    if !args::is_set(input.args, &["hostname", "n"]) {
        argv.push(format!("--hostname={}.{{instance}}@%h", input.process));
    }

    forbid_args(input, &["pidfile"], PIDFILE_WHY, errs);
    forbid_args(input, &["detach", "D"], super::DAEMON_WHY, errs);
    if let Some(key) = args::first_set(input.args, &["beat", "B"]) {
        errs.push(BackendError {
            field: Field::Arg(key.to_owned()),
            message: format!(
                "`args.{key}` embeds a beat in the worker; with several instances or \
                 restarts, periodic tasks would be sent more than once"
            ),
            hint: format!(
                "remove `{key}` and add a process with `backend = \"celery-beat\"`, \
                 which prodserver runs as a single instance"
            ),
        });
    }

    // Celery keeps only the last `--include`/`-I` (not a multiple option),
    // so every module named goes into one flag, where the first was.
    let first = input
        .args
        .iter()
        .position(|(k, _)| INCLUDE.contains(&k.as_str()))
        .unwrap_or(input.args.len());
    let (before, after) = input.args.split_at(first);
    argv.extend(args::render(before, INCLUDE, errs));
    let mut modules = include_modules(input.args, errs);
    // The integration is one more module for the worker to import.
    if input.celery_integration && !modules.iter().any(|m| m == crate::celery::MODULE) {
        modules.push(crate::celery::MODULE.to_owned());
    }
    if !modules.is_empty() {
        argv.push(format!("--include={}", modules.join(",")));
    }
    argv.extend(args::render(after, INCLUDE, errs));
    argv
}

/// Celery's spellings of the worker's `--include`.
const INCLUDE: &[&str] = &["include", "I"];

/// Every module the [`INCLUDE`] keys name, in file order, once each: list
/// items and comma-separated strings alike.
fn include_modules(all: &[(String, super::ArgValue)], errs: &mut Vec<BackendError>) -> Vec<String> {
    use super::ArgValue;
    let mut modules: Vec<String> = Vec::new();
    let mut add = |key: &str, value: &ArgValue, errs: &mut Vec<BackendError>| match value {
        ArgValue::Bool(false) => {}
        ArgValue::Bool(true) | ArgValue::List(_) => errs.push(BackendError {
            field: Field::Arg(key.to_owned()),
            message: format!("`args.{key}` must name modules"),
            hint: format!(
                "give module names, as a string or a list of strings: \
                 `{key} = [\"shop.tasks\", \"billing.tasks\"]`"
            ),
        }),
        scalar => {
            let text = args::scalar_text(scalar).unwrap_or_default();
            for m in text.split(',').map(str::trim).filter(|m| !m.is_empty()) {
                if !modules.iter().any(|have| have == m) {
                    modules.push(m.to_owned());
                }
            }
        }
    };
    for (key, value) in all.iter().filter(|(k, _)| INCLUDE.contains(&k.as_str())) {
        match value {
            ArgValue::List(items) => items.iter().for_each(|item| add(key, item, errs)),
            scalar => add(key, scalar, errs),
        }
    }
    modules
}

fn check_queues(input: &BackendInput, errs: &mut Vec<BackendError>) {
    if let Some(bad) = input
        .queues
        .iter()
        .find(|q| q.is_empty() || q.contains(',') || q.chars().any(char::is_whitespace))
    {
        errs.push(BackendError {
            field: Field::Queues,
            message: format!(
                "queue name {bad:?} can't be passed to `-Q` (it is empty or contains a comma \
                 or whitespace)"
            ),
            hint: "list one queue name per element: `queues = [\"default\", \"emails\"]`"
                .to_owned(),
        });
    }
    if let Some(key) = args::first_set(input.args, &["Q", "queues"]) {
        errs.push(duplicate(
            key,
            "queues",
            "queues = [\"default\", \"emails\"]",
        ));
    }
}

/// `concurrency`, else `CELERYD_CONCURRENCY` from the child's environment,
/// else nothing (Celery then uses one process per CPU).
fn concurrency(input: &BackendInput, errs: &mut Vec<BackendError>) -> Option<u32> {
    let in_args = args::first_set(input.args, &["c", "concurrency"]);
    match (input.concurrency, in_args) {
        (Some(_), Some(key)) => {
            errs.push(duplicate(key, "concurrency", "concurrency = 4"));
            None
        }
        (Some(0), None) => {
            errs.push(BackendError {
                field: Field::Concurrency,
                message: "`concurrency` is 0".to_owned(),
                hint: "give the number of pool processes (e.g. `concurrency = 4`), or remove \
                       `concurrency` to let Celery use one per CPU"
                    .to_owned(),
            });
            None
        }
        (Some(n), None) => Some(n),
        // The user's own flag is more specific than an environment default.
        (None, Some(_)) => None,
        (None, None) => {
            let raw = input.env.get(CONCURRENCY_ENV)?;
            match raw.trim().parse::<u32>() {
                Ok(n) if n > 0 && raw.trim().bytes().all(|b| b.is_ascii_digit()) => Some(n),
                _ => {
                    errs.push(BackendError {
                        field: Field::Env(CONCURRENCY_ENV.to_owned()),
                        message: format!("{CONCURRENCY_ENV}={raw:?} is not a positive integer"),
                        hint: format!(
                            "set {CONCURRENCY_ENV} to the number of pool processes (e.g. 4), \
                             unset it, or set `concurrency = 4` on this process, which takes \
                             precedence"
                        ),
                    });
                    None
                }
            }
        }
    }
}

fn duplicate(arg_key: &str, key: &str, example: &str) -> BackendError {
    BackendError {
        field: Field::Arg(arg_key.to_owned()),
        message: format!("`args.{arg_key}` repeats the process's `{key}`"),
        hint: format!("keep only `{example}` on the process and remove `{arg_key}` from args"),
    }
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::backend::Field;
    use crate::plan::BackendKind::CeleryWorker;

    fn worker() -> In {
        In::new().process("worker").app("shop.celery.app")
    }

    const HOST: &str = "--hostname=worker.{instance}@%h";

    #[test]
    fn minimal() {
        assert_eq!(
            worker().argv(CeleryWorker),
            v(&["celery", "-A", "shop.celery.app", "worker", HOST])
        );
    }

    #[test]
    fn typical_a_before_worker_queues_joined_then_args() {
        let argv = worker()
            .queues(&["default", "emails"])
            .concurrency(4)
            .arg("loglevel", "info")
            .arg("pool", "prefork")
            .arg("max-tasks-per-child", 1000)
            .argv(CeleryWorker);
        assert_eq!(
            argv,
            v(&[
                "celery",
                "-A",
                "shop.celery.app",
                "worker",
                "-Q",
                "default,emails",
                "--concurrency=4",
                HOST,
                "--loglevel=info",
                "--pool=prefork",
                "--max-tasks-per-child=1000"
            ])
        );
        let a = argv.iter().position(|x| x == "-A");
        let w = argv.iter().position(|x| x == "worker");
        assert!(a < w);
    }

    #[test]
    fn single_queue() {
        let argv = worker().queues(&["emails"]).argv(CeleryWorker);
        assert_eq!(argv[4..6], v(&["-Q", "emails"]));
    }

    #[test]
    fn celeryd_concurrency_is_honoured() {
        let argv = worker().env("CELERYD_CONCURRENCY", "8").argv(CeleryWorker);
        assert_eq!(
            argv,
            v(&[
                "celery",
                "-A",
                "shop.celery.app",
                "worker",
                "--concurrency=8",
                HOST
            ])
        );
    }

    #[test]
    fn concurrency_key_overrides_celeryd_concurrency() {
        let argv = worker()
            .concurrency(2)
            .env("CELERYD_CONCURRENCY", "8")
            .argv(CeleryWorker);
        assert_eq!(argv[4], "--concurrency=2");
        // Even an invalid variable is not looked at when the key decides.
        let argv = worker()
            .concurrency(2)
            .env("CELERYD_CONCURRENCY", "lots")
            .argv(CeleryWorker);
        assert_eq!(argv[4], "--concurrency=2");
    }

    #[test]
    fn concurrency_in_args_overrides_celeryd_concurrency() {
        let argv = worker()
            .arg("c", 3)
            .env("CELERYD_CONCURRENCY", "8")
            .argv(CeleryWorker);
        assert_eq!(
            argv,
            v(&["celery", "-A", "shop.celery.app", "worker", HOST, "-c", "3"])
        );
    }

    #[test]
    fn invalid_celeryd_concurrency_is_an_error() {
        for bad in ["0", "-2", "four", "", "+4", "1.5"] {
            let e = worker()
                .env("CELERYD_CONCURRENCY", bad)
                .error(CeleryWorker, Field::Env("CELERYD_CONCURRENCY".into()));
            assert!(
                e.message.contains("positive integer"),
                "{bad}: {}",
                e.message
            );
            assert!(e.hint.contains("concurrency = 4"), "{}", e.hint);
        }
        let argv = worker()
            .env("CELERYD_CONCURRENCY", " 6\n")
            .argv(CeleryWorker);
        assert_eq!(argv[4], "--concurrency=6");
    }

    #[test]
    fn zero_concurrency_is_an_error() {
        let e = worker()
            .concurrency(0)
            .error(CeleryWorker, Field::Concurrency);
        assert!(e.hint.contains("one per CPU"));
    }

    #[test]
    fn user_hostname_wins() {
        let argv = worker().arg("n", "w1@%h").argv(CeleryWorker);
        assert_eq!(
            argv,
            v(&["celery", "-A", "shop.celery.app", "worker", "-n", "w1@%h"])
        );
        let argv = worker().arg("hostname", "w1@%h").argv(CeleryWorker);
        assert_eq!(
            argv,
            v(&[
                "celery",
                "-A",
                "shop.celery.app",
                "worker",
                "--hostname=w1@%h"
            ])
        );
    }

    #[test]
    fn every_include_is_merged_into_one_flag() {
        let list = |items: &[&str]| list(items.iter().map(|i| s(i)).collect());
        let argv = worker()
            .arg("loglevel", "info")
            .arg("include", list(&["a", "b"]))
            .arg("pool", "prefork")
            .arg("I", "c, a,d")
            .arg("include", "e")
            .argv(CeleryWorker);
        let want = v(&[
            "celery",
            "-A",
            "shop.celery.app",
            "worker",
            HOST,
            "--loglevel=info",
            "--include=a,b,c,d,e",
            "--pool=prefork",
        ]);
        assert_eq!(argv, want);
        // The Celery integration (on by default) joins that one flag.
        let mut on = want.clone();
        on[6] = "--include=a,b,c,d,e,prodserver_celery".into();
        let argv_on = worker()
            .arg("loglevel", "info")
            .arg("include", list(&["a", "b"]))
            .arg("pool", "prefork")
            .arg("I", "c, a,d")
            .arg("include", "e")
            .celery_integration()
            .argv(CeleryWorker);
        assert_eq!(argv_on, on);

        let argv = worker()
            .arg("include", list(&["a", "b"]))
            .argv(CeleryWorker);
        let want = v(&["celery", "-A", "shop.celery.app", "worker", HOST]);
        let mut with = want.clone();
        with.push("--include=a,b".into());
        assert_eq!(argv, with);
        with[5] = "--include=a,b,prodserver_celery".into();
        let argv_on = worker()
            .arg("include", list(&["a", "b"]))
            .celery_integration()
            .argv(CeleryWorker);
        assert_eq!(argv_on, with);

        // Nothing to include: no flag (the integration adds its own).
        for nothing in [
            list(&[]),
            s(""),
            s(" , "),
            crate::backend::ArgValue::Bool(false),
        ] {
            let argv = worker().arg("I", nothing).argv(CeleryWorker);
            assert_eq!(argv, want);
        }
    }

    #[test]
    fn include_must_name_modules() {
        for bad in [
            crate::backend::ArgValue::Bool(true),
            list(vec![list(vec![s("a")])]),
        ] {
            let errs = worker().arg("include", bad).errors(CeleryWorker);
            assert_eq!(errs.len(), 1, "{errs:?}");
            assert_eq!(errs[0].field, Field::Arg("include".into()));
            assert!(errs[0].message.contains("must name modules"), "{errs:?}");
        }
    }

    #[test]
    fn list_args_repeat_and_false_is_omitted() {
        let argv = worker()
            .arg("include", list(vec![s("shop.tasks"), s("billing.tasks")]))
            .arg("without-gossip", true)
            .arg("without-mingle", false)
            .argv(CeleryWorker);
        assert_eq!(
            argv[5..],
            v(&["--include=shop.tasks,billing.tasks", "--without-gossip"])
        );
    }

    #[test]
    fn pidfile_is_rejected_with_the_reason() {
        let e = worker()
            .arg("pidfile", "/run/w.pid")
            .error(CeleryWorker, Field::Arg("pidfile".into()));
        assert!(e.message.contains("exit 73"), "{}", e.message);
        assert!(e.hint.contains("remove `pidfile`"));
    }

    #[test]
    fn detach_and_embedded_beat_are_rejected() {
        worker()
            .arg("D", true)
            .error(CeleryWorker, Field::Arg("D".into()));
        let e = worker()
            .arg("B", true)
            .error(CeleryWorker, Field::Arg("B".into()));
        assert!(e.hint.contains("celery-beat"));
        worker()
            .arg("beat", true)
            .error(CeleryWorker, Field::Arg("beat".into()));
    }

    #[test]
    fn queues_or_concurrency_twice_are_errors() {
        let e = worker()
            .queues(&["a"])
            .arg("Q", "b")
            .error(CeleryWorker, Field::Arg("Q".into()));
        assert!(e.hint.contains("queues = ["));
        let e = worker()
            .concurrency(2)
            .arg("concurrency", 3)
            .error(CeleryWorker, Field::Arg("concurrency".into()));
        assert!(e.hint.contains("concurrency = 4"));
        // Queues given only in args pass through.
        let argv = worker().arg("Q", "a,b").argv(CeleryWorker);
        assert_eq!(argv[5..], v(&["-Q", "a,b"]));
    }

    #[test]
    fn bad_queue_names_are_errors() {
        for bad in ["a,b", "", "two words"] {
            let e = worker()
                .queues(&["default", bad])
                .error(CeleryWorker, Field::Queues);
            assert!(e.hint.contains("queues = [\"default\", \"emails\"]"));
        }
    }

    #[test]
    fn missing_app_is_an_error_with_a_celery_example() {
        let e = In::new()
            .process("worker")
            .queues(&["default"])
            .error(CeleryWorker, Field::App);
        assert!(e.hint.contains("app = \"proj.celery.app\""), "{}", e.hint);
    }

    #[test]
    fn app_in_args_is_an_error() {
        worker()
            .arg("app", "other")
            .error(CeleryWorker, Field::Arg("app".into()));
    }

    #[test]
    fn program_overrides_celery() {
        let argv = worker().program(".venv/bin/celery").argv(CeleryWorker);
        assert_eq!(argv[0], ".venv/bin/celery");
        assert_eq!(argv[1..4], v(&["-A", "shop.celery.app", "worker"]));
    }
}
