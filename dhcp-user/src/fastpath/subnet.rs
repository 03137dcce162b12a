//! Encodes what a reply profile's fast-path ACKs carry into the kernel's [`ReplyProfile`].
use std::net::Ipv4Addr;

use dhcp_common::{
    ReplyProfile,
    bootp::{OPT_DNS, OPT_DOMAIN_NAME, OPT_END, OPT_ROUTER, OPT_SERVER_ID, OPT_SUBNET_MASK},
    maps::{PROFILE_LONG_OPTS_LEN, PROFILE_OPTS_LEN},
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
    /// The options (with their END) do not fit even the long block.
    #[error(
        "the fast-path options need {need} bytes, more than the {PROFILE_LONG_OPTS_LEN} an ACK has room for (fewer routers/DNS servers/options or a shorter domain)"
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
    /// The option block (54, 1, 3, 6, 15, the rest by code, END), zero padded: the short one
    /// ([`PROFILE_OPTS_LEN`] bytes) when it fits, else the long one
    /// ([`PROFILE_LONG_OPTS_LEN`], [`ReplyProfile::F_LONG`]); [`SubnetError::TooLong`] when it
    /// does not fit that either.
    pub fn encode(&self) -> Result<ReplyProfile, SubnetError> {
        let mut b = Vec::with_capacity(PROFILE_OPTS_LEN);
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
        if b.len() > PROFILE_LONG_OPTS_LEN {
            return Err(SubnetError::TooLong { need: b.len() });
        }
        let flags = if b.len() > PROFILE_OPTS_LEN { ReplyProfile::F_LONG } else { 0 };
        let mut opts = [0u8; PROFILE_LONG_OPTS_LEN];
        opts[..b.len()].copy_from_slice(&b);
        let mut open = opts;
        open[end_at] = 0;
        Ok(ReplyProfile {
            server_id: self.server_id.octets(),
            enabled: 1,
            t1_secs: self.t1_secs,
            t2_secs: self.t2_secs,
            flags,
            opts_sum: opts_sum(&opts),
            open_sum: opts_sum(&open),
            _pad: 0,
            opts,
            open_opts: open,
        })
    }
}

/// The block's ones'-complement sum over little-endian 32-bit words, folded to 32 bits, as
/// XDP adds it to the UDP checksum (the zeroes past a short block add nothing).
#[expect(clippy::cast_possible_truncation, reason = "the loop leaves s <= u32::MAX")]
fn opts_sum(opts: &[u8; PROFILE_LONG_OPTS_LEN]) -> u32 {
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
    fn the_block_is_short_when_it_fits_long_when_not_and_an_error_past_that() {
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
        assert_eq!(r.flags, 0, "the short block");
        assert!(r.opts[PROFILE_OPTS_LEN..].iter().all(|b| *b == 0));
        // Past the short block: the long one, with END and its zeroes where the short one
        // would have had them.
        s.domain = Some("x".repeat(80));
        let long = s.encode().unwrap();
        assert_eq!(long.flags, ReplyProfile::F_LONG);
        assert_eq!(long.block_len(), PROFILE_LONG_OPTS_LEN);
        let end = long.opts.iter().rposition(|b| *b == OPT_END).unwrap();
        assert!(end >= PROFILE_OPTS_LEN);
        // A class's options (NTP servers, routes, vendor options, TFTP) after 15, by code.
        s.domain = Some("example.net".into());
        s.extra =
            vec![(66, b"tftp.example.net".to_vec()), (42, vec![10, 0, 0, 3]), (121, vec![1; 60])];
        let r = s.encode().unwrap();
        assert_eq!(r.flags, ReplyProfile::F_LONG);
        let codes: Vec<u8> = {
            let mut o = 0;
            let mut v = vec![];
            while r.opts[o] != OPT_END {
                v.push(r.opts[o]);
                o += 2 + usize::from(r.opts[o + 1]);
            }
            v
        };
        assert_eq!(codes, [54, 1, 3, 6, 15, 42, 66, 121]);
        // More than the long block holds: refused, saying how much it would take.
        s.extra.push((43, vec![7; 120]));
        assert!(
            matches!(s.encode(), Err(SubnetError::TooLong { need }) if need > PROFILE_LONG_OPTS_LEN)
        );
    }
}
