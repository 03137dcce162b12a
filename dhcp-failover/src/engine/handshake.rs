//! CONNECT / CONNECTACK (draft-12 §7.8, §7.9, §8.2), as ISC checks them.

use super::{Farewell, Link, Peer, Retry, Timer, wire_time};
use crate::messages::{ConnectAckInfo, ConnectInfo};
use crate::options::{PROTOCOL_VERSION, RejectReason};
use crate::wire::Message;

impl Peer {
    pub(super) fn connect_info(&self) -> ConnectInfo {
        ConnectInfo {
            relationship: self.cfg.relationship.as_bytes().to_vec(),
            max_unacked: self.cfg.max_unacked_updates,
            receive_timer: self.cfg.max_response_delay,
            vendor_class: self.cfg.vendor_class.as_bytes().to_vec(),
            mclt: self.mclt,
            hba: self.hba.0,
        }
    }

    fn skew_too_large(&self, now: u64, sent: u32) -> bool {
        now.abs_diff(u64::from(sent)) > u64::from(self.cfg.max_clock_skew)
    }

    /// Secondary: the primary's CONNECT. Rejections follow ISC's checks: unknown name, missing
    /// MCLT or HBA, clocks more than `max_clock_skew` apart.
    pub(super) fn on_connect(&mut self, now: u64, msg: &Message) {
        let name = self.cfg.relationship.clone().into_bytes();
        let name = name.as_slice();
        let verdict = if msg.relationship_name() != Some(name) {
            Err((RejectReason::INVALID_PARTNER, "unknown relationship name"))
        } else if msg.protocol_version() != Some(PROTOCOL_VERSION) {
            Err((RejectReason::VERSION_MISMATCH, "unsupported protocol version"))
        } else if msg.tls_request().unwrap_or(0) >= 2 {
            Err((RejectReason::TLS_NOT_SUPPORTED, "TLS is not supported"))
        } else if msg.mclt().is_none_or(|m| m == 0) {
            Err((RejectReason::INVALID_MCLT, "missing MCLT"))
        } else if msg.hba().is_none() {
            Err((RejectReason::HBA_CONFLICT, "missing hash bucket assignment"))
        } else if msg.max_unacked().is_none() || msg.receive_timer().is_none() {
            Err((RejectReason::UNKNOWN_CONNECT, "missing connection parameters"))
        } else if self.skew_too_large(now, msg.time) {
            Err((RejectReason::TIME_MISMATCH, "time offset too large"))
        } else {
            Ok(())
        };
        self.partner.refused_for_skew = matches!(verdict, Err((RejectReason::TIME_MISMATCH, _)));
        if let Err((reason, text)) = verdict {
            self.transmits.push_back(Message::connect_reject(
                wire_time(now),
                msg.xid,
                name,
                reason,
                text,
            ));
            self.close(now, reason, text, Farewell::Silent, Retry::Later);
            return;
        }
        let (mclt, hba) = (msg.mclt().unwrap_or(self.mclt), msg.hba().unwrap_or(self.hba.0));
        let learned = mclt != self.mclt || hba != self.hba.0;
        self.mclt = mclt;
        self.hba = crate::load_balance::Hba(hba);
        self.learn_partner(msg);
        self.link = Link::AwaitState;
        self.timers.stop(Timer::Handshake);
        self.arm_receive(now);
        let ack = ConnectAckInfo {
            relationship: name.to_vec(),
            max_unacked: self.cfg.max_unacked_updates,
            receive_timer: self.cfg.max_response_delay,
            vendor_class: self.cfg.vendor_class.as_bytes().to_vec(),
        };
        self.send(now, Message::connect_ack(wire_time(now), msg.xid, &ack));
        self.send_state(now);
        if learned {
            // §7.8.2 step 7: the secondary must keep the primary's MCLT across restarts.
            self.persist();
        }
    }

    /// Primary: the secondary's answer to our CONNECT.
    pub(super) fn on_connect_ack(&mut self, now: u64, msg: &Message, sent_xid: u32) {
        if msg.xid != sent_xid {
            // §7.9.2: not the answer to our CONNECT; ignore it.
            return;
        }
        self.partner.refused_for_skew = msg.reject_reason() == Some(RejectReason::TIME_MISMATCH);
        if let Some(reason) = msg.reject_reason() {
            self.events.push_back(super::Event::PartnerDisconnected {
                reason: Some(reason),
                message: msg.message_text().unwrap_or_default().to_vec(),
            });
            let text = "partner rejected CONNECT";
            self.close(now, reason, text, Farewell::Silent, Retry::Later);
            return;
        }
        let problem = if msg.relationship_name() != Some(self.cfg.relationship.as_bytes()) {
            Some((RejectReason::INVALID_PARTNER, "relationship name mismatch"))
        } else if msg.protocol_version() != Some(PROTOCOL_VERSION) {
            Some((RejectReason::VERSION_MISMATCH, "unsupported protocol version"))
        } else if self.skew_too_large(now, msg.time) {
            Some((RejectReason::TIME_MISMATCH, "time offset too large"))
        } else {
            None
        };
        self.partner.refused_for_skew |= matches!(problem, Some((RejectReason::TIME_MISMATCH, _)));
        self.learn_partner(msg);
        self.link = Link::AwaitState;
        self.timers.stop(Timer::Handshake);
        self.arm_receive(now);
        if let Some((reason, text)) = problem {
            self.close(now, reason, text, Farewell::Disconnect, Retry::Later);
            return;
        }
        self.send_state(now);
    }

    fn learn_partner(&mut self, msg: &Message) {
        self.partner.max_unacked = msg.max_unacked().unwrap_or(1).clamp(1, super::MAX_WINDOW);
        self.partner.receive_timer = msg.receive_timer().unwrap_or(self.cfg.max_response_delay);
        self.partner.vendor_class = msg.vendor_class().unwrap_or_default().to_vec();
        // A new connection starts from a clean slate: the partner will tell us its state.
        self.partner.startup = false;
    }
}
