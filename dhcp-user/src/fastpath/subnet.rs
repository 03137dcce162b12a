//! Encodes what a subnet's fast-path ACKs carry into the kernel's [`SubnetReply`].
use std::net::Ipv4Addr;

use dhcp_common::{
    SubnetReply,
    bootp::{OPT_DNS, OPT_DOMAIN_NAME, OPT_END, OPT_ROUTER, OPT_SERVER_ID, OPT_SUBNET_MASK},
    maps::SUBNET_OPTS_LEN,
};

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SubnetOptions {
    pub server_id: Ipv4Addr,
    pub mask: Ipv4Addr,
    pub routers: Vec<Ipv4Addr>,
    pub dns: Vec<Ipv4Addr>,
    pub domain: Option<String>,
    pub t1_secs: u32,
    pub t2_secs: u32,
    /// Every other option of the reply profile (code, value), after 15 in code order, as the
    /// slow path puts them (`packet::encode_reply`); a value over 255 bytes goes out as
    /// consecutive instances of its code (RFC 3396).
    pub extra: Vec<(u8, Vec<u8>)>,
}

#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum SubnetError {
    #[error(
        "the fast-path options need {need} bytes, more than the {SUBNET_OPTS_LEN} an ACK has room for (fewer routers/DNS servers or a shorter domain)"
    )]
    TooLong { need: usize },
    #[error("option {0} has more than 255 bytes")]
    OptionTooLong(u8),
}

fn push_opt(out: &mut Vec<u8>, code: u8, value: &[u8]) -> Result<(), SubnetError> {
    let len = u8::try_from(value.len()).map_err(|_| SubnetError::OptionTooLong(code))?;
    out.push(code);
    out.push(len);
    out.extend_from_slice(value);
    Ok(())
}

/// An option of any length, split into instances of at most 255 bytes (RFC 3396).
fn push_long(out: &mut Vec<u8>, code: u8, value: &[u8]) {
    crate::packet::push_option(out, code, value);
}

impl SubnetOptions {
    /// The option block (54, 1, 3, 6, 15, END), zero padded; errors when it does not fit.
    pub fn encode(&self) -> Result<SubnetReply, SubnetError> {
        let mut b = Vec::with_capacity(SUBNET_OPTS_LEN);
        let addrs = |v: &[Ipv4Addr]| v.iter().flat_map(Ipv4Addr::octets).collect::<Vec<u8>>();
        push_opt(&mut b, OPT_SERVER_ID, &self.server_id.octets())?;
        push_opt(&mut b, OPT_SUBNET_MASK, &self.mask.octets())?;
        if !self.routers.is_empty() {
            push_opt(&mut b, OPT_ROUTER, &addrs(&self.routers))?;
        }
        if !self.dns.is_empty() {
            push_opt(&mut b, OPT_DNS, &addrs(&self.dns))?;
        }
        if let Some(d) = &self.domain {
            push_opt(&mut b, OPT_DOMAIN_NAME, d.as_bytes())?;
        }
        let mut extra: Vec<&(u8, Vec<u8>)> = self.extra.iter().collect();
        extra.sort_by_key(|(c, _)| *c);
        for (code, value) in extra {
            push_long(&mut b, *code, value);
        }
        let end_at = b.len();
        b.push(OPT_END);
        if b.len() > SUBNET_OPTS_LEN {
            return Err(SubnetError::TooLong { need: b.len() });
        }
        let mut opts = [0u8; SUBNET_OPTS_LEN];
        opts[..b.len()].copy_from_slice(&b);
        let mut open = opts;
        open[end_at] = 0;
        Ok(SubnetReply {
            server_id: self.server_id.octets(),
            enabled: 1,
            t1_secs: self.t1_secs,
            t2_secs: self.t2_secs,
            opts,
            opts_sum: opts_sum(&opts),
            open_opts: open,
            open_sum: opts_sum(&open),
        })
    }
}

/// The block's ones'-complement sum over little-endian 32-bit words, folded to 32 bits, as
/// XDP adds it to the UDP checksum.
#[expect(clippy::cast_possible_truncation, reason = "the loop leaves s <= u32::MAX")]
fn opts_sum(opts: &[u8; SUBNET_OPTS_LEN]) -> u32 {
    let mut s: u64 =
        opts.chunks_exact(4).map(|c| u64::from(u32::from_le_bytes([c[0], c[1], c[2], c[3]]))).sum();
    while s > u64::from(u32::MAX) {
        s = (s & 0xffff_ffff) + (s >> 32);
    }
    s as u32
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn too_many_options_is_an_error_not_a_truncated_ack() {
        let mut s = SubnetOptions {
            server_id: Ipv4Addr::new(10, 0, 0, 1),
            mask: Ipv4Addr::new(255, 255, 255, 0),
            routers: vec![Ipv4Addr::new(10, 0, 0, 1)],
            dns: vec![Ipv4Addr::new(10, 0, 0, 2)],
            domain: Some("example.net".into()),
            t1_secs: 1800,
            t2_secs: 3150,
            extra: vec![],
        };
        let r = s.encode().unwrap();
        assert_eq!(&r.opts[..6], &[54, 4, 10, 0, 0, 1]);
        // The open block is the block with its END (and nothing else) turned into PAD.
        let end = r.opts.iter().rposition(|b| *b == OPT_END).unwrap();
        let mut open = r.opts;
        open[end] = 0;
        assert_eq!(r.open_opts, open);
        assert!(r.open_opts[end..].iter().all(|b| *b == 0));
        assert_eq!(r.open_sum, opts_sum(&open));
        assert_ne!(r.open_sum, r.opts_sum);
        s.domain = Some("x".repeat(80));
        assert!(matches!(s.encode(), Err(SubnetError::TooLong { .. })));
    }
}
