//! What a Django project's source says, read without running it (pure
//! functions on file contents), and the shape of what its Python says
//! when it is run (`probe.py`'s JSON).
//!
//! The static readings are the fallback when the project's Python cannot
//! import the settings (a missing secret, a database the import touches):
//! they see only literal values, which is why the written file says which
//! of the two was used.

use std::sync::OnceLock;

use regex::Regex;
use serde::Deserialize;

/// The settings module `manage.py` sets:
/// `os.environ.setdefault("DJANGO_SETTINGS_MODULE", "shop.settings")`.
pub fn settings_module_from_manage_py(text: &str) -> Option<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r#"setdefault\(\s*["']DJANGO_SETTINGS_MODULE["']\s*,\s*["']([\w.]+)["']"#)
            .expect("a valid regex")
    });
    re.captures(text).map(|c| c[1].to_owned())
}

/// `NAME = "value"` at the start of a line (a literal string only).
pub fn literal_setting(text: &str, name: &str) -> Option<String> {
    let re = Regex::new(&format!(
        r#"(?m)^{}\s*=\s*["']([^"'\n]+)["']"#,
        regex::escape(name)
    ))
    .ok()?;
    re.captures_iter(text).last().map(|c| c[1].to_owned())
}

/// `shop.wsgi.application` (Django's dotted form) → `shop.wsgi:application`
/// (what servers take).
pub fn server_app(dotted: &str) -> String {
    match dotted.rsplit_once('.') {
        Some((module, attr)) if !dotted.contains(':') => format!("{module}:{attr}"),
        _ => dotted.to_owned(),
    }
}

/// The variable a Celery app is assigned to in `text` (`app = Celery(...)`).
pub fn celery_app_variable(text: &str) -> Option<String> {
    static RE: OnceLock<Regex> = OnceLock::new();
    let re = RE.get_or_init(|| {
        Regex::new(r"(?m)^([A-Za-z_]\w*)\s*=\s*(?:celery\.)?Celery\(").expect("a valid regex")
    });
    re.captures(text).map(|c| c[1].to_owned())
}

/// `shop/celery.py` → `shop.celery`; `None` for a path that is not a
/// module path (a folder name with a dot or a dash).
pub fn module_of(relative: &str) -> Option<String> {
    let stem = relative.strip_suffix(".py")?;
    let parts: Vec<&str> = stem.split('/').collect();
    let ident = |p: &&str| {
        !p.is_empty()
            && !p.starts_with(|c: char| c.is_ascii_digit())
            && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
    };
    parts.iter().all(ident).then(|| parts.join("."))
}

/// Celery facts read from source text: the queues literal routes and
/// `Queue("name")` declarations name, the default queue, and whether a
/// beat schedule or django-celery-beat is mentioned.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct StaticCelery {
    pub route_queues: Vec<String>,
    pub declared_queues: Vec<String>,
    pub default_queue: Option<String>,
    pub beat_schedule: bool,
}

pub fn static_celery(texts: &[&str]) -> StaticCelery {
    static ROUTE: OnceLock<Regex> = OnceLock::new();
    static QUEUE: OnceLock<Regex> = OnceLock::new();
    static DEFAULT: OnceLock<Regex> = OnceLock::new();
    let route = ROUTE.get_or_init(|| {
        Regex::new(r#"["']queue["']\s*:\s*["']([^"'\n]+)["']"#).expect("a valid regex")
    });
    let queue = QUEUE.get_or_init(|| {
        Regex::new(r#"\bQueue\(\s*(?:name\s*=\s*)?["']([^"'\n]+)["']"#).expect("a valid regex")
    });
    let default = DEFAULT.get_or_init(|| {
        Regex::new(
            r#"(?m)(?:CELERY_TASK_DEFAULT_QUEUE|task_default_queue)\s*=\s*["']([^"'\n]+)["']"#,
        )
        .expect("a valid regex")
    });
    let mut out = StaticCelery::default();
    for text in texts {
        for c in route.captures_iter(text) {
            push_new(&mut out.route_queues, &c[1]);
        }
        for c in queue.captures_iter(text) {
            push_new(&mut out.declared_queues, &c[1]);
        }
        if let Some(c) = default.captures_iter(text).last() {
            out.default_queue = Some(c[1].to_owned());
        }
        out.beat_schedule |= text.contains("BEAT_SCHEDULE") || text.contains("beat_schedule");
    }
    out
}

fn push_new(list: &mut Vec<String>, item: &str) {
    if !list.iter().any(|x| x == item) {
        list.push(item.to_owned());
    }
}

/// django-celery-beat named in `INSTALLED_APPS` as written (any quote).
pub fn mentions_django_celery_beat(text: &str) -> bool {
    text.contains("\"django_celery_beat\"") || text.contains("'django_celery_beat'")
}

/// What `probe.py` prints after its marker.
pub const PROBE_MARK: &str = "@@prodserver-init@@";

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ProbeOut {
    pub python: String,
    pub version: String,
    pub installed: std::collections::BTreeMap<String, bool>,
    pub settings: Option<ProbeSettings>,
    pub settings_error: Option<String>,
    pub celery: Option<ProbeCelery>,
    pub celery_error: Option<String>,
}

impl ProbeOut {
    pub fn has(&self, module: &str) -> bool {
        self.installed.get(module).copied().unwrap_or(false)
    }
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ProbeSettings {
    pub wsgi_application: Option<String>,
    pub asgi_application: Option<String>,
    pub installed_apps: Vec<String>,
    pub celery: CeleryFacts,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct ProbeCelery {
    pub attr: String,
    #[serde(flatten)]
    pub facts: CeleryFacts,
}

#[derive(Debug, Clone, Deserialize, PartialEq)]
pub struct CeleryFacts {
    pub routes_set: bool,
    pub route_queues: Vec<String>,
    pub opaque_routes: Vec<String>,
    pub task_queues: Option<Vec<String>>,
    pub default_queue: Option<String>,
    pub beat_schedule: bool,
    pub beat_scheduler: Option<String>,
}

/// The probe's JSON from its whole stdout (the project may print too):
/// the last line starting with the marker.
pub fn parse_probe(stdout: &str) -> Result<ProbeOut, String> {
    let line = stdout
        .lines()
        .rev()
        .find_map(|l| l.strip_prefix(PROBE_MARK))
        .ok_or_else(|| "it printed no result".to_owned())?;
    serde_json::from_str(line).map_err(|e| format!("its result is not understood: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn settings_module_from_both_quote_styles() {
        let django =
            "def main():\n    os.environ.setdefault('DJANGO_SETTINGS_MODULE', 'mysite.settings')\n";
        assert_eq!(
            settings_module_from_manage_py(django).as_deref(),
            Some("mysite.settings")
        );
        let black = "    os.environ.setdefault(\n        \"DJANGO_SETTINGS_MODULE\", \"shop.settings.prod\"\n    )";
        assert_eq!(
            settings_module_from_manage_py(black).as_deref(),
            Some("shop.settings.prod")
        );
        assert_eq!(settings_module_from_manage_py("import sys\n"), None);
    }

    #[test]
    fn literal_settings_take_the_last_assignment() {
        let text = "WSGI_APPLICATION = 'a.wsgi.application'\n# WSGI_APPLICATION = \"no\"\nWSGI_APPLICATION = \"b.wsgi.application\"\nASGI_APPLICATION = get()\n";
        assert_eq!(
            literal_setting(text, "WSGI_APPLICATION").as_deref(),
            Some("b.wsgi.application")
        );
        assert_eq!(literal_setting(text, "ASGI_APPLICATION"), None);
    }

    #[test]
    fn dotted_apps_become_module_colon_attr() {
        assert_eq!(server_app("shop.wsgi.application"), "shop.wsgi:application");
        assert_eq!(server_app("shop.asgi:app"), "shop.asgi:app");
    }

    #[test]
    fn celery_app_variable_and_module() {
        let text = "import os\nfrom celery import Celery\n\napp = Celery(\"shop\")\n";
        assert_eq!(celery_app_variable(text).as_deref(), Some("app"));
        assert_eq!(
            celery_app_variable("celery_app = celery.Celery('x')").as_deref(),
            Some("celery_app")
        );
        assert_eq!(celery_app_variable("# nothing"), None);
        assert_eq!(module_of("shop/celery.py").as_deref(), Some("shop.celery"));
        assert_eq!(module_of("my-site/celery.py"), None);
    }

    #[test]
    fn static_celery_reads_routes_queues_and_default() {
        let settings = r#"
CELERY_TASK_DEFAULT_QUEUE = "default"
CELERY_TASK_ROUTES = {
    "orders.tasks.notify_customer": {"queue": "priority"},
    'orders.tasks.*': {'queue': 'default'},
}
CELERY_BEAT_SCHEDULE = {}
"#;
        let celery = "app.conf.task_queues = (Queue('emails'), Queue(name=\"reports\"))\n";
        let got = static_celery(&[settings, celery]);
        assert_eq!(got.route_queues, vec!["priority", "default"]);
        assert_eq!(got.declared_queues, vec!["emails", "reports"]);
        assert_eq!(got.default_queue.as_deref(), Some("default"));
        assert!(got.beat_schedule);
        assert!(!static_celery(&["x = 1"]).beat_schedule);
    }

    #[test]
    fn probe_output_is_found_after_noise() {
        let json = r#"{"python": "/v/bin/python", "version": "3.12.1", "installed": {"gunicorn": true},
            "settings": null, "settings_error": "KeyError: 'SECRET'", "celery": null, "celery_error": null}"#
            .replace('\n', " ");
        let stdout = format!("hello from settings\n{PROBE_MARK}{json}\n");
        let got = parse_probe(&stdout).expect("parsed");
        assert!(got.has("gunicorn"));
        assert!(!got.has("uvicorn"));
        assert_eq!(got.settings_error.as_deref(), Some("KeyError: 'SECRET'"));
        assert!(parse_probe("Traceback ...").is_err());
    }
}
