//! The vhost's policies: setting, clearing and listing them, and applying the one that wins
//! to each queue and exchange.
//!
//! Policies live beside the bindings index under the topology lock, so a declare and a policy
//! change never miss each other: a queue declared while a policy is set gets it either at its
//! declare or when the policy is applied to every queue.
//!
//! Of the policies whose pattern matches a name and that apply to the entity's kind, the one
//! with the highest priority applies alone (its keys never merge with a lower one's). Between
//! equal priorities RabbitMQ's choice is unspecified; Warren takes the policy whose name sorts
//! first, so that the choice is stable.

use std::sync::Arc;

use regex::Regex;

use super::{settle, VHost};
use crate::queue::Fallout;
use crate::store::{PolicyRecord, StoreOp};
use crate::{Error, FieldTable, Policy, Result};

/// A policy with its compiled pattern.
#[derive(Debug)]
pub(super) struct CompiledPolicy {
    /// The policy as set.
    pub(super) policy: Policy,
    /// Its pattern.
    regex: Regex,
}

/// Which kind of entity a policy is looked up for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum Target {
    Queue,
    Exchange,
}

/// Returns the policy that applies to the entity `name` of kind `target`, if one does.
pub(super) fn winner<'a>(
    policies: &'a [CompiledPolicy],
    target: Target,
    name: &str,
) -> Option<(&'a str, &'a FieldTable)> {
    policies
        .iter()
        .filter(|p| match target {
            Target::Queue => p.policy.apply_to.queues(),
            Target::Exchange => p.policy.apply_to.exchanges(),
        })
        .filter(|p| p.regex.is_match(name))
        // Highest priority; between equals, the first name.
        .max_by(|a, b| {
            (a.policy.priority)
                .cmp(&b.policy.priority)
                .then_with(|| b.policy.name.cmp(&a.policy.name))
        })
        .map(|p| (p.policy.name.as_str(), &p.policy.definition))
}

impl VHost {
    /// Sets (adds or replaces) a policy and applies it to the queues and exchanges it now
    /// wins for. On a persistent broker the call returns once the policy is stored; if the
    /// write fails the previous policies are put back.
    pub(crate) fn set_policy(&self, policy: Policy) -> Result<()> {
        let regex = policy.compile()?;
        let name = policy.name.clone();
        let record = self.policy_record(&policy);
        let compiled = CompiledPolicy { policy, regex };
        self.change_policies(&name, Some(compiled), || StoreOp::PutPolicy(record))
    }

    /// Removes a policy; the entities it applied to fall back to the next matching policy,
    /// or to their arguments alone.
    ///
    /// # Errors
    ///
    /// 404 if the vhost has no policy of that name.
    pub(crate) fn clear_policy(&self, name: &str) -> Result<()> {
        if !self
            .topology
            .lock()
            .policies
            .iter()
            .any(|p| p.policy.name == name)
        {
            return Err(Error::NotFound {
                reason: format!("no policy '{name}' in vhost '{}'", self.name),
            });
        }
        self.change_policies(name, None, || StoreOp::DeletePolicy {
            vhost: self.name.to_string(),
            name: name.to_owned(),
        })
    }

    /// Replaces the policy `name` (by `new`, or by nothing), applies the policies, and waits
    /// for the store write `op` outside the lock; undoes the change if the write fails.
    fn change_policies(
        &self,
        name: &str,
        new: Option<CompiledPolicy>,
        op: impl FnOnce() -> StoreOp,
    ) -> Result<()> {
        let (ticket, previous, fallout) = {
            let mut topology = self.topology.lock();
            let at = topology.policies.iter().position(|p| p.policy.name == name);
            let previous = at.map(|at| topology.policies.remove(at));
            topology.policies.extend(new);
            let ticket = self.submit_topology(&mut topology, op);
            let fallout = self.apply_policies(&topology.policies);
            (ticket, previous, fallout)
        };
        self.absorb_all(fallout);
        settle(ticket).inspect_err(|_| {
            let fallout = {
                let mut topology = self.topology.lock();
                topology.policies.retain(|p| p.policy.name != name);
                topology.policies.extend(previous);
                self.apply_policies(&topology.policies)
            };
            self.absorb_all(fallout);
        })
    }

    /// Returns the vhost's policies, sorted by name.
    pub(crate) fn list_policies(&self) -> Vec<Policy> {
        let topology = self.topology.lock();
        let mut all: Vec<Policy> = topology.policies.iter().map(|p| p.policy.clone()).collect();
        all.sort_by(|a, b| a.name.cmp(&b.name));
        all
    }

    /// Puts back a policy read from the store at open (applied once everything is back).
    #[cfg(feature = "persistence")]
    pub(crate) fn recover_policy(&self, record: &PolicyRecord) -> Result<()> {
        let apply_to = crate::PolicyApplyTo::from_name(&record.apply_to)?;
        let policy = Policy::new(&record.name, &record.pattern, record.definition.clone())
            .apply_to(apply_to)
            .priority(record.priority);
        let regex = policy.compile()?;
        let mut topology = self.topology.lock();
        topology.policies.retain(|p| p.policy.name != policy.name);
        topology.policies.push(CompiledPolicy { policy, regex });
        Ok(())
    }

    /// Applies the recovered policies once the vhost's exchanges and queues are back.
    #[cfg(feature = "persistence")]
    pub(crate) fn apply_recovered_policies(&self) {
        let fallout = {
            let topology = self.topology.lock();
            if topology.policies.is_empty() {
                return;
            }
            self.apply_policies(&topology.policies)
        };
        self.absorb_all(fallout);
    }

    /// Applies the winning policy (or none) to every queue and exchange; returns what the
    /// queues left to do (dead letters of a lowered length limit, timers), to be absorbed once
    /// the topology lock is released.
    pub(super) fn apply_policies(
        &self,
        policies: &[CompiledPolicy],
    ) -> Vec<(Arc<crate::queue::Queue>, Fallout)> {
        let exchanges: Vec<_> = self.exchanges.iter().map(|e| Arc::clone(&e)).collect();
        for exchange in exchanges {
            if !exchange.name.is_empty() {
                exchange.apply_policy(winner(policies, Target::Exchange, &exchange.name));
            }
        }
        let queues: Vec<_> = self.queues.iter().map(|q| Arc::clone(&q)).collect();
        queues
            .into_iter()
            .map(|queue| {
                let fallout = queue.apply_policy(winner(policies, Target::Queue, &queue.name));
                (queue, fallout)
            })
            .collect()
    }

    /// Absorbs the fallout of applying policies.
    pub(super) fn absorb_all(&self, fallout: Vec<(Arc<crate::queue::Queue>, Fallout)>) {
        for (queue, fallout) in fallout {
            self.absorb(&queue, fallout);
        }
    }

    fn policy_record(&self, policy: &Policy) -> PolicyRecord {
        PolicyRecord {
            vhost: self.name.to_string(),
            name: policy.name.clone(),
            pattern: policy.pattern.clone(),
            apply_to: policy.apply_to.as_str().to_owned(),
            priority: policy.priority,
            definition: policy.definition.clone(),
        }
    }
}
