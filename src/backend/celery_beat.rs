//! `backend = "celery-beat"`: `celery -A APP beat [args...]`.
//!
//! `scheduler` is an ordinary arg (`--scheduler=...`); only one beat may
//! run, which the engine enforces (singleton lock), not this module.

use super::{args, celery, forbid_args, BackendError, BackendInput, BackendKind, DefaultReadiness};

pub(super) const SHAPE: &str = "celery -A APP beat ARGS";

/// TERM (like INT) makes beat save its schedule and exit 0; HUP and QUIT
/// kill it without saving, so a restarted beat would re-send tasks.
pub(super) const STOP_SIGNAL: i32 = libc::SIGTERM;

/// `celery beat` has no `--include`: the integration's module stands in
/// for the app (`-A prodserver_celery`) and loads the real one, named in
/// its environment, with Celery's own `find_app`.
fn launch(input: &BackendInput, errs: &mut Vec<BackendError>) -> super::Launch {
    let mut argv = argv(input, errs);
    let mut env = Vec::new();
    if input.celery_integration {
        if let Some(app) = argv.get_mut(APP_INDEX) {
            let app = std::mem::replace(app, crate::celery::MODULE.to_owned());
            env.push((crate::celery::APP_ENV.to_owned(), app));
        }
    }
    super::with_celery_integration(input, argv, DefaultReadiness::CeleryBeat, env)
}

/// Where [`super::celery`] puts the app: `celery -A APP beat`.
const APP_INDEX: usize = 2;

pub(super) const BACKEND: super::Backend = super::Backend {
    program: super::CELERY,
    stop_signal: STOP_SIGNAL,
    shape: SHAPE,
    keys: &[super::BackendKey::App],
    launch,
};

pub(super) fn argv(input: &BackendInput, errs: &mut Vec<BackendError>) -> Vec<String> {
    let mut argv = celery(BackendKind::CeleryBeat, input, "beat", errs);
    forbid_args(input, &["pidfile"], super::celery_worker::PIDFILE_WHY, errs);
    forbid_args(input, &["detach", "D"], super::DAEMON_WHY, errs);
    argv.extend(args::render(input.args, &[], errs));
    argv
}

#[cfg(test)]
mod tests {
    use super::super::testutil::*;
    use crate::backend::Field;
    use crate::plan::BackendKind::CeleryBeat;

    #[test]
    fn typical_with_scheduler() {
        let argv = In::new()
            .app("shop.celery.app")
            .arg(
                "scheduler",
                "django_celery_beat.schedulers:DatabaseScheduler",
            )
            .arg("loglevel", "info")
            .argv(CeleryBeat);
        assert_eq!(
            argv,
            v(&[
                "celery",
                "-A",
                "shop.celery.app",
                "beat",
                "--scheduler=django_celery_beat.schedulers:DatabaseScheduler",
                "--loglevel=info"
            ])
        );
    }

    #[test]
    fn short_schedule_file() {
        let argv = In::new()
            .app("shop")
            .arg("s", "/var/lib/shop/celerybeat-schedule")
            .argv(CeleryBeat);
        assert_eq!(
            argv,
            v(&[
                "celery",
                "-A",
                "shop",
                "beat",
                "-s",
                "/var/lib/shop/celerybeat-schedule"
            ])
        );
    }

    #[test]
    fn pidfile_is_rejected_with_the_reason() {
        let e = In::new()
            .app("shop")
            .arg("pidfile", "/tmp/beat.pid")
            .error(CeleryBeat, Field::Arg("pidfile".into()));
        assert!(e.message.contains("73"), "{}", e.message);
        assert!(e.hint.contains("remove `pidfile`"));
    }

    #[test]
    fn a_false_pidfile_passes_nothing_and_is_fine() {
        let argv = In::new().app("shop").arg("pidfile", false).argv(CeleryBeat);
        assert_eq!(argv, v(&["celery", "-A", "shop", "beat"]));
    }

    #[test]
    fn detach_is_rejected() {
        In::new()
            .app("shop")
            .arg("detach", true)
            .error(CeleryBeat, Field::Arg("detach".into()));
    }

    #[test]
    fn missing_app_is_an_error_with_a_celery_example() {
        let e = In::new().error(CeleryBeat, Field::App);
        assert!(e.hint.contains("app = \"proj.celery.app\""), "{}", e.hint);
    }
}
