//! A concise, owned builder for [`BackendInput`] in tests.

use std::collections::BTreeMap;
use std::path::PathBuf;

use super::{resolve, ArgValue, BackendError, BackendInput, Field, Launch};
use crate::plan::BackendKind;

pub fn s(v: &str) -> ArgValue {
    ArgValue::Str(v.to_owned())
}

pub fn list(items: Vec<ArgValue>) -> ArgValue {
    ArgValue::List(items)
}

pub trait IntoArg {
    fn into_arg(self) -> ArgValue;
}

impl IntoArg for &str {
    fn into_arg(self) -> ArgValue {
        s(self)
    }
}

impl IntoArg for i64 {
    fn into_arg(self) -> ArgValue {
        ArgValue::Int(self)
    }
}

impl IntoArg for f64 {
    fn into_arg(self) -> ArgValue {
        ArgValue::Float(self)
    }
}

impl IntoArg for bool {
    fn into_arg(self) -> ArgValue {
        ArgValue::Bool(self)
    }
}

impl IntoArg for ArgValue {
    fn into_arg(self) -> ArgValue {
        self
    }
}

/// Process `web` of project `shop`, runtime dir `/run/user/1000/prodserver`,
/// nothing else set.
pub struct In {
    process: String,
    project: String,
    app: Option<String>,
    command: Option<Vec<String>>,
    program: Option<String>,
    python: Option<String>,
    queues: Vec<String>,
    concurrency: Option<u32>,
    args: Vec<(String, ArgValue)>,
    env: BTreeMap<String, String>,
    runtime_dir: PathBuf,
    /// Files that exist (absolute paths).
    files: Vec<PathBuf>,
    celery_integration: bool,
}

impl In {
    pub fn new() -> In {
        In {
            process: "web".into(),
            project: "shop".into(),
            app: None,
            command: None,
            program: None,
            python: None,
            queues: Vec::new(),
            concurrency: None,
            args: Vec::new(),
            env: BTreeMap::new(),
            runtime_dir: PathBuf::from("/run/user/1000/prodserver"),
            files: Vec::new(),
            celery_integration: false,
        }
    }

    pub fn process(mut self, name: &str) -> In {
        self.process = name.into();
        self
    }

    pub fn project(mut self, name: &str) -> In {
        self.project = name.into();
        self
    }

    pub fn app(mut self, app: &str) -> In {
        self.app = Some(app.into());
        self
    }

    pub fn app_if(self, cond: bool, app: &str) -> In {
        if cond {
            self.app(app)
        } else {
            self
        }
    }

    pub fn command(mut self, words: &[&str]) -> In {
        self.command = Some(words.iter().map(|w| (*w).to_owned()).collect());
        self
    }

    pub fn command_if(self, cond: bool, words: &[&str]) -> In {
        if cond {
            self.command(words)
        } else {
            self
        }
    }

    pub fn program(mut self, program: &str) -> In {
        self.program = Some(program.into());
        self
    }

    pub fn python(mut self, python: &str) -> In {
        self.python = Some(python.into());
        self
    }

    pub fn queues(mut self, queues: &[&str]) -> In {
        self.queues = queues.iter().map(|q| (*q).to_owned()).collect();
        self
    }

    pub fn concurrency(mut self, n: u32) -> In {
        self.concurrency = Some(n);
        self
    }

    pub fn arg(mut self, key: &str, value: impl IntoArg) -> In {
        self.args.push((key.to_owned(), value.into_arg()));
        self
    }

    pub fn env(mut self, key: &str, value: &str) -> In {
        self.env.insert(key.into(), value.into());
        self
    }

    pub fn runtime_dir(mut self, dir: &str) -> In {
        self.runtime_dir = PathBuf::from(dir);
        self
    }

    /// A file that exists (gunicorn's `gunicorn.conf.py` in `/srv/shop`).
    pub fn file(mut self, path: &str) -> In {
        self.files.push(PathBuf::from(path));
        self
    }

    /// Load the Celery integration.
    pub fn celery_integration(mut self) -> In {
        self.celery_integration = true;
        self
    }

    /// The launch, failing the test with the errors if there are any.
    pub fn launch(&self, kind: BackendKind) -> Launch {
        match self.resolve(kind) {
            Ok(launch) => launch,
            Err(errs) => panic!("expected a launch for {kind:?}, got errors: {errs:#?}"),
        }
    }

    pub fn resolve(&self, kind: BackendKind) -> Result<Launch, Vec<BackendError>> {
        self.with(|input| resolve(kind, input))
    }

    /// Runs `f` on the [`BackendInput`] this builder describes.
    pub fn with<T>(&self, f: impl FnOnce(&BackendInput) -> T) -> T {
        let input = BackendInput {
            process: &self.process,
            project: &self.project,
            app: self.app.as_deref(),
            command: self.command.as_deref(),
            program: self.program.as_deref(),
            python: self.python.as_deref(),
            queues: &self.queues,
            concurrency: self.concurrency,
            args: &self.args,
            env: &self.env,
            runtime_dir: &self.runtime_dir,
            cwd: std::path::Path::new("/srv/shop"),
            file_exists: &|p: &std::path::Path| self.files.iter().any(|f| f == p),
            celery_integration: self.celery_integration,
        };
        f(&input)
    }

    /// The argv, failing the test with the errors if there are any.
    pub fn argv(&self, kind: BackendKind) -> Vec<String> {
        match self.resolve(kind) {
            Ok(out) => out.argv,
            Err(errs) => panic!("expected an argv for {kind:?}, got errors: {errs:#?}"),
        }
    }

    /// The errors, failing the test if it resolved; every error must come
    /// with a message and a hint.
    pub fn errors(&self, kind: BackendKind) -> Vec<BackendError> {
        match self.resolve(kind) {
            Ok(out) => panic!("expected errors for {kind:?}, got argv {:?}", out.argv),
            Err(errs) => {
                for e in &errs {
                    assert!(!e.message.is_empty(), "{e:?}");
                    assert!(e.hint.len() > 10, "hint too thin: {e:?}");
                }
                errs
            }
        }
    }

    /// The single error on `field`, failing the test on anything else.
    pub fn error(&self, kind: BackendKind, field: Field) -> BackendError {
        one_error_on(Err(self.errors(kind)), field)
    }
}

pub fn one_error(result: Result<Launch, Vec<BackendError>>) -> BackendError {
    match result {
        Ok(out) => panic!("expected one error, got argv {:?}", out.argv),
        Err(mut errs) if errs.len() == 1 => {
            let e = errs.remove(0);
            assert!(!e.message.is_empty() && !e.hint.is_empty(), "{e:?}");
            e
        }
        Err(errs) => panic!("expected one error, got {errs:#?}"),
    }
}

fn one_error_on(result: Result<Launch, Vec<BackendError>>, field: Field) -> BackendError {
    let e = one_error(result);
    assert_eq!(e.field, field, "{e:#?}");
    e
}

pub fn v(items: &[&str]) -> Vec<String> {
    items.iter().map(|i| (*i).to_owned()).collect()
}
