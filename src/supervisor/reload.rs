//! What a reload changes: a pure function of two plans.
//!
//! Processes are matched by name (their stable identity). A process whose
//! spec differs in anything that reaches its processes (command line,
//! environment, user, health, limits, instances...) is `changed`, and a
//! reload rolls it through the rollout machine; an identical one is left
//! running untouched; new ones start and removed ones stop.

use crate::plan::{Plan, ProcessSpec};

#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Diff {
    pub unchanged: Vec<String>,
    pub changed: Vec<Change>,
    pub added: Vec<String>,
    pub removed: Vec<String>,
}

/// A process present in both plans, with what differs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Change {
    pub process: String,
    /// Only the instance count differs: a scale, not a restart.
    pub only_instances: bool,
}

/// The difference between the running plan and a new one.
pub fn diff(old: &Plan, new: &Plan) -> Diff {
    let mut d = Diff::default();
    for o in &old.processes {
        match new.processes.iter().find(|n| n.name == o.name) {
            None => d.removed.push(o.name.clone()),
            Some(n) if same(old, o, new, n) => d.unchanged.push(o.name.clone()),
            Some(n) => {
                let mut scaled = n.clone();
                scaled.instances = o.instances;
                d.changed.push(Change {
                    process: o.name.clone(),
                    only_instances: same(old, o, new, &scaled),
                })
            }
        }
    }
    for n in &new.processes {
        if !old.processes.iter().any(|o| o.name == n.name) {
            d.added.push(n.name.clone());
        }
    }
    d
}

/// Equal specs, dependencies compared by name: their ids are positions in
/// each file, which a reordering changes.
fn same(old: &Plan, a: &ProcessSpec, new: &Plan, b: &ProcessSpec) -> bool {
    let deps = |plan: &Plan, p: &ProcessSpec| -> Vec<(String, crate::plan::Condition)> {
        p.depends_on
            .iter()
            .map(|d| (plan.processes[d.process].name.clone(), d.condition))
            .collect()
    };
    let strip = |p: &ProcessSpec| ProcessSpec {
        depends_on: Vec::new(),
        ..p.clone()
    };
    deps(old, a) == deps(new, b) && strip(a) == strip(b)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;
    use crate::config::{load_str, LoadOptions};

    /// A plan from a file's text, for the supervisor's pure tests.
    pub(crate) fn plan(text: &str) -> Plan {
        let dir = std::env::temp_dir();
        let opts = LoadOptions {
            hold_sockets: true,
            env: [("PATH".to_string(), "/usr/bin:/bin".to_string())].into(),
            runtime_dir: dir.join("prodserver-supervisor-tests"),
            dev: false,
        };
        load_str(&dir.join("prodserver.toml"), text.to_string(), &opts)
            .unwrap_or_else(|e| panic!("{:?}", e.diagnostics))
            .plan
    }

    #[test]
    fn unchanged_changed_added_removed() {
        let old = plan(
            r#"
[processes.web]
backend = "command"
command = ["sleep", "1"]
[processes.worker]
backend = "command"
command = ["sleep", "2"]
[processes.beat]
backend = "command"
command = ["sleep", "3"]
depends_on = { worker = "started" }
[processes.gone]
backend = "command"
command = ["sleep", "4"]
"#,
        );
        let new = plan(
            r#"
[processes.beat]
backend = "command"
command = ["sleep", "3"]
depends_on = { worker = "started" }
[processes.web]
backend = "command"
command = ["sleep", "1"]
instances = 3
[processes.worker]
backend = "command"
command = ["sleep", "2"]
env = { X = "1" }
[processes.fresh]
backend = "command"
command = ["sleep", "5"]
"#,
        );
        assert_eq!(
            diff(&old, &new),
            Diff {
                // Reordering the file changes nothing.
                unchanged: vec!["beat".into()],
                changed: vec![
                    Change {
                        process: "web".into(),
                        only_instances: true
                    },
                    Change {
                        process: "worker".into(),
                        only_instances: false
                    },
                ],
                added: vec!["fresh".into()],
                removed: vec!["gone".into()],
            }
        );
        assert_eq!(
            diff(&old, &old),
            Diff {
                unchanged: vec!["web".into(), "worker".into(), "beat".into(), "gone".into()],
                ..Diff::default()
            }
        );
    }
}
