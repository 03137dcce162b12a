//! What goes wrong, one seeded draw at a time: crashes of the daemon or of the host, restarts,
//! partitions, reset connections, and the operator (right, and once in a while wrong).
use dhcp_failover::ServerState;

use super::*;
use crate::core::{Measured, Request};

impl Sim {
    pub(super) fn faults(&mut self) {
        let starting = self
            .fenced
            .is_some_and(|f| self.nodes[f].state().is_none_or(|s| s == ServerState::Startup));
        if let Some(f) = self.fenced
            && self.nodes[f].state().is_some_and(|s| s != ServerState::Startup)
        {
            self.fenced = None;
        }
        for (i, role) in ROLE.iter().enumerate() {
            let now = self.now;
            if self.nodes[i].live.is_none() {
                let fence_ok =
                    self.fenced != Some(i) || (!self.partitioned && self.partner_alive(i));
                if now >= self.nodes[i].restart_at && fence_ok {
                    let t = self.nodes[i].clock(now);
                    self.nodes[i].start(t);
                    self.log(|| format!("{role} restarts"));
                }
                continue;
            }
            if !starting && self.rng.chance(8) {
                self.crash(i);
            }
        }
        if !starting && self.rng.chance(10) {
            self.partitioned = !self.partitioned;
            if self.partitioned
                && let Some(c) = &mut self.conn
            {
                c.broken = true;
            }
            let p = self.partitioned;
            self.log(|| format!("partition {}", if p { "starts" } else { "heals" }));
        }
        if !starting && self.rng.chance(5) {
            self.reset_conn();
        }
        // The operator: only a partner that is really down is declared down.
        for (i, role) in ROLE.iter().enumerate() {
            if self.nodes[1 - i].live.is_none()
                && self.nodes[i].state() == Some(ServerState::CommunicationsInterrupted)
                && self.rng.chance(30)
            {
                let req = Request::FailoverPartnerDown { confirm: true, relationship: None };
                let asked = Input::Control { req, reply: (), measured: Measured::default() };
                let out = self.drive(i, vec![asked], false).map_err(|e| self.fail_later(e));
                if out.is_ok_and(|answers| answers.iter().all(|a| a.get("error").is_none())) {
                    self.fenced = Some(1 - i);
                    self.log(|| format!("operator: {role} partner-down"));
                }
            }
        }
        self.operator_errs();
    }

    /// The mistaken operator: a partition, a partner that looks dead and is not.
    pub(super) fn operator_errs(&mut self) {
        if !self.mistake.errs || self.mistake.made.is_some() || !self.partitioned {
            return;
        }
        for (i, role) in ROLE.iter().enumerate() {
            if self.partner_alive(i)
                && self.nodes[i].state() == Some(ServerState::CommunicationsInterrupted)
                && self.mistake.rng.chance(30)
            {
                let req = Request::FailoverPartnerDown { confirm: true, relationship: None };
                let asked = Input::Control { req, reply: (), measured: Measured::default() };
                let out = self.drive(i, vec![asked], false).map_err(|e| self.fail_later(e));
                if out.is_ok_and(|answers| answers.iter().all(|a| a.get("error").is_none())) {
                    self.mistake.made = Some(self.now);
                    self.log(|| {
                        format!("operator errs: {role} partner-down, the partner serves on")
                    });
                    return;
                }
            }
        }
    }

    pub(super) fn crash(&mut self, i: usize) {
        let host = self.rng.chance(300);
        let n = &mut self.nodes[i];
        n.live = None;
        n.restart_at = self.now + 5 + self.rng.below(300);
        n.inbox.clear();
        n.link_in.clear();
        if host {
            n.events.clear();
            n.kernel.clear();
            n.kernel_on = false;
        }
        if let Some(c) = &mut self.conn
            && c.up[i]
        {
            c.up[i] = false;
            c.q[i].clear();
            c.fin[1 - i] = Some(self.now);
        }
        self.log(|| format!("{} {} crashes", ROLE[i], if host { "host" } else { "daemon" }));
    }

    /// The connection is reset under both servers (a middlebox, a flap).
    pub(super) fn reset_conn(&mut self) {
        if let Some(c) = &mut self.conn
            && !c.broken
        {
            for i in 0..2 {
                if c.up[i] {
                    c.fin[i] = Some(self.now);
                }
            }
            self.log(|| "connection reset".into());
        }
    }
}
