//! Lambda resource-policy statements: one per invoker and qualifier, under this instance's
//! statement prefix; functions marked with this instance's tag find their orphans.

use std::collections::{BTreeMap, BTreeSet};

use serde_json::Value;

use super::{Action, LambdaAction, NoticeKind, Planner, ProblemKind};
use crate::desired::{Desired, DesiredFunction};
use crate::model::iam_policy;
use crate::observed::MarkedFunction;
use crate::observed::ObservedFunction;

/// Function name -> (unqualified ARN, qualifiers its tag records).
type Marks = BTreeMap<String, (String, BTreeSet<String>)>;

impl Planner<'_> {
    pub(super) fn function(&mut self, df: &DesiredFunction) {
        let key = (df.name.clone(), df.qualifier.clone());
        let resource = df.qualified_arn();
        let Some(Some(of)) = self.observed.functions.get(&key) else {
            self.problem(
                ProblemKind::FunctionNotFound,
                &df.mapping,
                &resource,
                format!("function `{}`{} does not exist; trustsync manages its permissions, not the function", df.name, df.qualifier.as_ref().map(|q| format!(" (qualifier `{q}`)")).unwrap_or_default()),
            );
            return;
        };
        let m = Some(df.mapping.as_str());
        self.lambda_statements(df, of, &resource, m);
        if let Some(role) = &df.execution_role {
            if of.role.as_ref() != Some(role) {
                let c = self.push(
                    Action::Lambda(LambdaAction::SetExecutionRole {
                        function_name: df.name.clone(),
                        role_arn: role.clone(),
                        revision_id: of.config_revision.clone(),
                    }),
                    &of.arn,
                    m,
                    "execution role differs",
                );
                c.before = of.role.clone().map(Value::String);
                c.after = Some(Value::String(role.clone()));
            }
        }
    }

    fn lambda_statements(
        &mut self,
        df: &DesiredFunction,
        of: &ObservedFunction,
        resource: &str,
        m: Option<&str>,
    ) {
        let mut have: BTreeMap<String, &Value> = BTreeMap::new();
        let mut legacy: Vec<(&str, &Value)> = Vec::new();
        for st in &of.statements {
            if let Some(sid) = st.get("Sid").and_then(Value::as_str) {
                if sid.starts_with(&self.s.statement_id_prefix) {
                    have.insert(sid.to_string(), st);
                } else if self.is_legacy_statement(sid) {
                    legacy.push((sid, st));
                }
            }
        }
        let remove = |sid: &str| {
            Action::Lambda(LambdaAction::RemoveLambdaPermission {
                function_name: df.name.clone(),
                qualifier: df.qualifier.clone(),
                statement_id: sid.into(),
            })
        };
        for (sid, want) in &df.statements {
            let add = Action::Lambda(LambdaAction::AddLambdaPermission {
                function_name: df.name.clone(),
                qualifier: df.qualifier.clone(),
                statement_id: sid.clone(),
                principal: want.principal.clone(),
                lambda_action: want.action.clone(),
                source_arn: want.source_arn.clone(),
                source_account: want.source_account.clone(),
                revision_id: of.policy_revision.clone(),
            });
            match have.get(sid.as_str()) {
                None => {
                    let c = self.push(
                        add,
                        resource,
                        m,
                        format!("invoker `{}` not allowed yet", want.invoker),
                    );
                    c.after = Some(want.document());
                }
                Some(st) => {
                    let mut st = (*st).clone();
                    if let Value::Object(map) = &mut st {
                        map.remove("Resource");
                    }
                    if !iam_policy::statements_equivalent(&want.document(), &st) {
                        let reason = if principal_is_unique_id(&st) {
                            "statement names a deleted principal (unique id); re-adding it"
                                .to_string()
                        } else {
                            "statement drifted from the policy".to_string()
                        };
                        let c = self.push(remove(sid), resource, m, reason.clone());
                        c.before = Some(st.clone());
                        let c = self.push(add, resource, m, reason);
                        c.after = Some(want.document());
                    }
                }
            }
        }
        for (sid, st) in have {
            if !df.statements.contains_key(sid.as_str()) {
                let c = self.push(remove(&sid), resource, m, "invoker no longer in the policy");
                c.before = Some(st.clone());
            }
        }
        for (sid, st) in legacy {
            let c = self.push(
                remove(sid),
                resource,
                m,
                "statement written by an earlier trustsync (no instance hash in its id); the policy's invokers are written under this instance's prefix",
            );
            c.before = Some(st.clone());
        }
    }

    /// A statement id in the form trustsync wrote before statement prefixes carried the
    /// instance hash: `statementIdPrefix` then `role-`, `svc-` or `arn-`. Only looked for
    /// on the functions this instance manages.
    fn is_legacy_statement(&self, sid: &str) -> bool {
        sid.strip_prefix(&self.s.legacy_statement_prefix)
            .is_some_and(|rest| {
                ["role-", "svc-", "arn-"]
                    .iter()
                    .any(|k| rest.starts_with(k))
            })
    }

    /// Statements on functions this instance marked that no FunctionAccess wants any more
    /// (its document deleted, or its function or qualifier changed), and the marks
    /// themselves: each function whose policy trustsync writes carries its tag, listing the
    /// qualifiers, for as long as any of its statements may be there.
    /// The functions this instance marks with its tag: every managed function that exists,
    /// and those that still carry orphan statements (without prune); statements whose
    /// FunctionAccess is gone are removed with prune, reported without. Then the tags are
    /// brought in line.
    pub(super) fn marked_functions(&mut self, desired: &Desired) {
        let mut marks = self.managed_marks(desired);
        let wanted: BTreeSet<(String, Option<String>)> = desired
            .functions
            .iter()
            .map(|f| (f.name.clone(), f.qualifier.clone()))
            .collect();
        for (name, mf) in &self.observed.marked_functions {
            let qualifiers = std::iter::once(None).chain(mf.qualifiers().into_iter().map(Some));
            for q in qualifiers {
                if !wanted.contains(&(name.clone(), q.clone()))
                    && self.orphan_statements(name, mf, &q)
                {
                    let e = marks
                        .entry(name.clone())
                        .or_insert_with(|| (mf.arn.clone(), BTreeSet::new()));
                    e.1.extend(q);
                }
            }
        }
        self.function_tags(&marks);
    }

    /// Function name -> (unqualified ARN, qualifiers to record) for the managed functions
    /// that exist.
    fn managed_marks(&self, desired: &Desired) -> Marks {
        let mut marks = Marks::new();
        for df in &desired.functions {
            let key = (df.name.clone(), df.qualifier.clone());
            if let Some(Some(of)) = self.observed.functions.get(&key) {
                let e = marks
                    .entry(df.name.clone())
                    .or_insert_with(|| (of.arn.clone(), BTreeSet::new()));
                e.1.extend(df.qualifier.clone());
            }
        }
        marks
    }

    /// This instance's statements on a function (at a qualifier) no FunctionAccess names:
    /// removed with prune, else reported. Returns whether some stay (so the mark stays).
    fn orphan_statements(&mut self, name: &str, mf: &MarkedFunction, q: &Option<String>) -> bool {
        let key = (name.to_string(), q.clone());
        let Some(Some(of)) = self.observed.functions.get(&key) else {
            return false;
        };
        let ours: Vec<&Value> = of
            .statements
            .iter()
            .filter(|st| {
                st.get("Sid")
                    .and_then(Value::as_str)
                    .is_some_and(|sid| sid.starts_with(&self.s.statement_id_prefix))
            })
            .collect();
        if ours.is_empty() {
            return false;
        }
        let resource = match q {
            Some(q) => format!("{}:{q}", mf.arn),
            None => mf.arn.clone(),
        };
        if self.s.prune {
            for st in ours {
                let sid = st["Sid"].as_str().unwrap_or_default().to_string();
                let c = self.push(
                    Action::Lambda(LambdaAction::RemoveLambdaPermission {
                        function_name: name.to_string(),
                        qualifier: q.clone(),
                        statement_id: sid.into(),
                    }),
                    &resource,
                    None,
                    "trustsync's statement on a function no FunctionAccess names any more (prune)",
                );
                c.before = Some(st.clone());
            }
            return false;
        }
        self.notice(
            NoticeKind::Orphan,
            &resource,
            format!(
                "{} trustsync statement(s) on a function no FunctionAccess names any more: {}; enable prune to remove them",
                ours.len(),
                ours.iter()
                    .filter_map(|st| st["Sid"].as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            ),
        );
        true
    }

    /// Tag each marked function with its qualifiers; untag those with nothing left.
    fn function_tags(&mut self, marks: &Marks) {
        let observed = self.observed;
        let key = &self.s.function_tag_key;
        for (name, (arn, qualifiers)) in marks {
            let value = qualifiers.iter().cloned().collect::<Vec<_>>().join(" ");
            if observed.marked_functions.get(name).map(|m| &m.tag_value) != Some(&value) {
                self.push(
                    Action::Lambda(LambdaAction::TagFunction {
                        function_arn: arn.clone(),
                        key: key.clone(),
                        value,
                    }),
                    arn,
                    None,
                    "marks the function whose policy trustsync writes, so its statements are found later",
                );
            }
        }
        for (name, mf) in &observed.marked_functions {
            if !marks.contains_key(name) {
                self.push(
                    Action::Lambda(LambdaAction::UntagFunction {
                        function_arn: mf.arn.clone(),
                        key: key.clone(),
                    }),
                    &mf.arn,
                    None,
                    "no trustsync statement remains on the function",
                );
            }
        }
    }
}

fn principal_is_unique_id(st: &Value) -> bool {
    let canon = iam_policy::canonical_statement(st);
    canon
        .get("Principal")
        .and_then(|p| p.get("AWS"))
        .and_then(Value::as_array)
        .is_some_and(|ids| {
            ids.iter()
                .filter_map(Value::as_str)
                .any(|s| s.starts_with("AROA") || s.starts_with("AIDA"))
        })
}
